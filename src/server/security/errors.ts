import { TabAgentError } from "../../core/errors.js";

/**
 * `permission_error` is the OpenAI type for 403s (toErrorEnvelope's status table already names it), but
 * OpenAIErrorType in core/errors.ts does not list it yet: the widening cast goes away once it does.
 */
const PERMISSION_ERROR = "permission_error";

/** 401: the request carries no API key, or one that is not configured. */
export class InvalidApiKeyError extends TabAgentError {
  override readonly status = 401;
  override readonly type = "authentication_error" as const;
  constructor(reason: "missing" | "invalid") {
    super(reason === "missing" ? "Missing API key: send it in an 'Authorization: Bearer <key>' header." : "Incorrect API key provided.", {
      code: "invalid_api_key",
      headers: { "www-authenticate": "Bearer" },
    });
  }
}

/** 403s: the request is understood, and refused. */
class PermissionDeniedError extends TabAgentError {
  override readonly status: number = 403;
  override readonly type = PERMISSION_ERROR;
}

/** The `Host` header names something other than this server: a DNS-rebinding attempt, or a name not yet allowed. */
export class HostNotAllowedError extends PermissionDeniedError {
  constructor(host: string | undefined) {
    const shown = host === undefined || host === "" ? "(none)" : `'${host.length > 100 ? `${host.slice(0, 100)}…` : host}'`;
    super(`Host ${shown} is not allowed. If this server should answer to that name, add it with --allowed-host (TABAGENT_ALLOWED_HOSTS).`, { code: "host_not_allowed" });
  }
}

/** A CORS preflight from an origin that is not configured. */
export class CorsOriginNotAllowedError extends PermissionDeniedError {
  constructor(origin: string) {
    const shown = origin.length > 200 ? `${origin.slice(0, 200)}…` : origin;
    super(`Origin '${shown}' may not call this API from a browser. To allow it, add it with --cors-origin (TABAGENT_CORS_ORIGINS).`, {
      code: "cors_origin_not_allowed",
    });
  }
}
