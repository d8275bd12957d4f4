/**
 * Why a Hugging Face hub request failed, in words a user can act on. Messages name the repo, revision, file and
 * hub URL, never the access token.
 */
type HubErrorKind =
  /** 401/403: gated or private repo, missing or rejected token. */
  | "unauthorized"
  /** 404 (or the hub's RepoNotFound): repo, revision or file. */
  | "not-found"
  /** Connection refused, DNS, timeout, connection lost mid-body. */
  | "unreachable"
  /** The server answered a ranged read with the whole file; reading it could mean gigabytes. */
  | "range-unsupported"
  /** Anything else the hub answered that we cannot use (5xx, wrong Content-Range, truncated body, bad JSON). */
  | "bad-response"
  /** A malformed repo id, revision, hub URL or token, caught before any request. */
  | "invalid";

export class HubError extends Error {
  readonly kind: HubErrorKind;
  /** The HTTP status when the hub answered; null for network failures and invalid input. */
  readonly status: number | null;

  constructor(kind: HubErrorKind, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HubError";
    this.kind = kind;
    this.status = options.status ?? null;
  }
}

/** What a request was about, so a failed response can say which thing is missing or forbidden. */
export interface HubRequestContext {
  hubUrl: string;
  repo: string;
  /** The revision as the user named it (not the commit it was pinned to). */
  revision: string;
  path?: string;
  tokenSent: boolean;
}

/** Maps a non-2xx hub response to a HubError, using the hub's `X-Error-Code` header where it sends one. */
export function hubErrorFromResponse(res: Response, ctx: HubRequestContext): HubError {
  const code = res.headers.get("x-error-code");
  const status = res.status;
  const at = `${ctx.repo}@${ctx.revision}`;
  const what = ctx.path === undefined ? at : `${ctx.path} in ${at}`;

  if (code === "RepoNotFound") {
    // The hub answers 401 for repos it will not admit exist to an anonymous caller, 404 otherwise.
    const hint = ctx.tokenSent ? " (or it is private and HF_TOKEN has no access to it)" : " (or it is gated or private: set HF_TOKEN)";
    return new HubError("not-found", `repo ${ctx.repo} not found on ${ctx.hubUrl}${hint}`, { status });
  }
  if (status === 401 || status === 403) {
    const msg = ctx.tokenSent
      ? `${what}: gated or private repo, and HF_TOKEN was rejected or has no access to it (request access on the hub page, or check the token)`
      : `${what}: gated or private repo: set HF_TOKEN`;
    return new HubError("unauthorized", msg, { status });
  }
  if (status === 404) {
    if (code === "RevisionNotFound") return new HubError("not-found", `revision ${ctx.revision} not found in ${ctx.repo}`, { status });
    if (code === "EntryNotFound" || ctx.path !== undefined) {
      return new HubError("not-found", `${ctx.path ?? "path"} not found in ${at}`, { status });
    }
    return new HubError("not-found", `repo or revision not found: ${at} on ${ctx.hubUrl}`, { status });
  }
  if (status === 416) {
    return new HubError("bad-response", `${what}: range not satisfiable (did the file change on the hub?)`, { status });
  }
  // The hub's own one-line reason, when it gives one, helps with 429/5xx; it never echoes credentials.
  const reason = res.headers.get("x-error-message")?.slice(0, 200);
  return new HubError("bad-response", `${ctx.hubUrl} answered HTTP ${status} for ${what}${reason ? `: ${reason}` : ""}`, { status });
}
