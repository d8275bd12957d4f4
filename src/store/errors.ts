import { TabAgentError, type OpenAIErrorType } from "../core/errors.js";

/**
 * Store errors. The CLI prints their message and exits 1; in the daemon they reach the OpenAI envelope like any
 * TabAgentError (a model whose pull failed answers 503 with the reason).
 */
export class StoreError extends TabAgentError {
  override readonly status: number = 500;
  override readonly type: OpenAIErrorType = "server_error";
}

/** A source that is not `owner/name[@revision][:file-or-quant]`, or a file/quant the repo does not have. */
export class InvalidPullSourceError extends StoreError {
  override readonly status = 400;
  override readonly type = "invalid_request_error" as const;
  constructor(message: string) {
    super(message, { code: "invalid_source" });
  }
}

/** 401/403 from the hub: what to do about it, never a bare status code. */
export class GatedRepoError extends StoreError {
  override readonly status = 403;
  override readonly type = "permission_error" as const;
  constructor(repo: string, hubUrl: string, tokenSent: boolean) {
    super(
      `${repo} is gated or private on ${hubUrl}: ` +
        (tokenSent
          ? "the access token was refused or has no access to it. Open the repo's page on the hub and accept its licence (or ask for access), then check the token."
          : "accept its licence on the repo's page on the hub (or ask for access), then provide an access token: set HF_TOKEN, or `hfTokenFile` in the config file (a file holding the token)."),
      { code: "repo_gated" },
    );
  }
}

/** The downloaded bytes are not what the hub's hash says: nothing is kept. */
export class HashMismatchError extends StoreError {
  override readonly status = 502;
  constructor(path: string, expected: string, got: string) {
    super(`${path}: downloaded content does not match the hub's hash (expected ${expected}, got ${got}); the partial file was removed, nothing was stored`, {
      code: "hash_mismatch",
    });
  }
}

/** A hub response or a file on disk that would make us read or write outside the store. */
export class UnsafePathError extends StoreError {
  override readonly status = 502;
  constructor(message: string) {
    super(message, { code: "unsafe_path" });
  }
}

/** The hub answered, but not something a pull can use (short body, no commit, bad listing). */
export class DownloadError extends StoreError {
  override readonly status = 502;
  /** Whether retrying (resuming) may succeed: connection lost, 5xx. */
  readonly retryable: boolean;
  /** Bytes this attempt wrote before failing, and where it started (for resume figures). */
  fetched = 0;
  resumedFrom: number | undefined;
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { code: "download_failed", cause: options.cause });
    this.retryable = options.retryable ?? false;
  }
}

/** A model the daemon is still downloading (on-demand pull from the config). */
export class ModelDownloadingError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string, detail: string, retryAfterSeconds: number) {
    super(`The model '${model}' is still downloading (${detail}). Retry later.`, {
      code: "model_downloading",
      headers: { "retry-after": String(retryAfterSeconds) },
    });
  }
}

/** An on-demand pull failed; the model stays unavailable until the daemon restarts or the config changes. */
export class ModelDownloadFailedError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string, reason: string) {
    super(`The model '${model}' could not be downloaded: ${reason}`, { code: "model_download_failed" });
  }
}

/** `tabagent rm` on a model a running daemon has loaded, or one the store does not own. */
export class StoreRefusalError extends StoreError {
  override readonly status = 409;
  override readonly type = "invalid_request_error" as const;
  constructor(message: string) {
    super(message, { code: "refused" });
  }
}
