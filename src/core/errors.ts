/**
 * Typed errors. Each carries the HTTP status and the OpenAI error `type`/`code`/`param` it maps to;
 * `toErrorEnvelope` (api/openai/errorEnvelope.ts) is the one place that turns any error into the wire shape.
 */
export type OpenAIErrorType =
  "invalid_request_error" | "not_found_error" | "rate_limit_error" | "server_error" | "service_unavailable_error" | "authentication_error" | "permission_error";

interface TabAgentErrorOptions {
  param?: string | null;
  code?: string | null;
  cause?: unknown;
  headers?: Record<string, string>;
}

export class TabAgentError extends Error {
  readonly status: number = 500;
  readonly type: OpenAIErrorType = "server_error";
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(message: string, options: TabAgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }
}

export class InvalidRequestError extends TabAgentError {
  override readonly status: number = 400;
  override readonly type = "invalid_request_error" as const;
}

/** A parameter that would change results but that this backend does not implement yet. */
export class UnsupportedParameterError extends InvalidRequestError {
  constructor(param: string, detail = "is not supported yet") {
    super(`Parameter '${param}' ${detail}.`, { param, code: "unsupported_parameter" });
  }
}

export class RouteNotFoundError extends TabAgentError {
  override readonly status = 404;
  override readonly type = "not_found_error" as const;
}

export class ModelNotFoundError extends TabAgentError {
  override readonly status = 404;
  override readonly type = "not_found_error" as const;
  constructor(model: string) {
    super(`The model '${model}' does not exist or is not served here. GET /v1/models lists the available models.`, {
      param: "model",
      code: "model_not_found",
    });
  }
}

/** The model exists but cannot serve this kind of request (e.g. chat on an embedding model). */
export class WrongTaskError extends InvalidRequestError {
  constructor(model: string, task: string, endpoint: string) {
    super(`The model '${model}' is a${/^[aeiou]/.test(task) ? "n" : ""} ${task} model and cannot serve ${endpoint}.`, {
      param: "model",
      code: "model_task_mismatch",
    });
  }
}

export class ContextLengthExceededError extends InvalidRequestError {
  constructor(promptTokens: number, contextSize: number, param = "messages") {
    super(`This model's context is ${contextSize} tokens, but the prompt is ${promptTokens} tokens (at least one token must remain for the answer).`, {
      param,
      code: "context_length_exceeded",
    });
  }
}

export class QueueFullError extends TabAgentError {
  override readonly status = 429;
  override readonly type = "rate_limit_error" as const;
  constructor(model: string, retryAfterSeconds: number) {
    super(`Model '${model}' is busy: all slots and the wait queue are full. Retry later.`, {
      code: "queue_full",
      headers: { "retry-after": String(retryAfterSeconds) },
    });
  }
}

/** The daemon as a whole has as many requests as it takes (running and queued, all models). */
export class ServerBusyError extends TabAgentError {
  override readonly status = 429;
  override readonly type = "rate_limit_error" as const;
  constructor(limit: number) {
    super(`The server is busy: ${limit} requests are already running or queued. Retry later.`, {
      code: "server_busy",
      headers: { "retry-after": "1" },
    });
  }
}

/**
 * Past the model's slots and queue (or the daemon's in-flight cap) while the model is still loading: the work will
 * drain once it is up, so this is "not yet" (503) rather than "too much" (429).
 */
export class ModelLoadingError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string, retryAfterSeconds: number) {
    super(`Model '${model}' is still loading and cannot take more requests yet. Retry later.`, {
      code: "model_loading",
      headers: { "retry-after": String(retryAfterSeconds) },
    });
  }
}

export class ModelLoadError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string, reason: string, cause?: unknown) {
    super(`Model '${model}' failed to load: ${reason}`, { code: "model_load_failed", cause });
  }
}

/** A backend asked to work while unloaded: the router never does this, so it is a bug, but one with a retryable answer. */
export class ModelNotLoadedError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string) {
    super(`The model '${model}' is not loaded; retry the request.`, { code: "model_not_loaded", headers: { "retry-after": "1" } });
  }
}

/** The model's chat template cannot be used (it hangs, exhausts memory or does not compile); completions still work. */
export class ChatTemplateError extends TabAgentError {
  override readonly status = 500;
  constructor(model: string, reason: string) {
    super(`The chat template of model '${model}' is unusable: ${reason}. Use /v1/completions, or set a working chatTemplate for it in the config.`, {
      code: "chat_template_unusable",
    });
  }
}

export class ServiceUnavailableError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
}

/** Thrown into waiting work when a client disconnects or the server shuts down. */
export class AbortedError extends TabAgentError {
  override readonly status = 499;
  constructor(message = "The request was aborted.") {
    super(message, { code: "request_aborted" });
  }
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`Invalid setting '${setting}': ${message}`);
    this.name = "ConfigError";
  }
}

/** Detection found the model but nothing may serve it (unknown format, pickle not allowed, ...). */
export class ModelNotServableError extends InvalidRequestError {
  constructor(model: string, why: string) {
    super(`The model '${model}' cannot be served: ${why}`, { param: "model", code: "model_not_servable" });
  }
}

/** The engine that serves a model is not installed or not part of this build. */
export class EngineUnavailableError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(model: string, engine: string, howToEnable: string) {
    super(`The model '${model}' needs the ${engine} engine, which is not available: ${howToEnable}`, { code: "engine_unavailable" });
  }
}

/** An upstream OpenAI-compatible server (a llama-server child, LM Studio, vLLM, ...) failed or refused. */
export class UpstreamError extends TabAgentError {
  override readonly status: number;
  override readonly type: OpenAIErrorType;
  constructor(message: string, options: TabAgentErrorOptions & { status?: number; type?: OpenAIErrorType } = {}) {
    super(message, { code: "upstream_error", ...options });
    this.status = options.status ?? 502;
    this.type = options.type ?? (this.status < 500 ? "invalid_request_error" : "server_error");
  }
}
