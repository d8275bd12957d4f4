import { TabAgentError } from "../../core/errors.js";

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface MappedError {
  status: number;
  body: ErrorEnvelope;
  headers: Record<string, string>;
  /** True for errors we did not anticipate: log them with their stack. */
  unexpected: boolean;
}

const TYPE_BY_STATUS: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  408: "invalid_request_error",
  413: "invalid_request_error",
  414: "invalid_request_error",
  415: "invalid_request_error",
  431: "invalid_request_error",
  429: "rate_limit_error",
  503: "service_unavailable_error",
};

/** Fastify's own errors (body parsing, limits) carry a FST_* code and a status. */
function fastifyError(err: { code?: unknown; statusCode?: unknown; message: string }): MappedError | null {
  const code = typeof err.code === "string" ? err.code : "";
  const status = typeof err.statusCode === "number" ? err.statusCode : 0;
  if (!code.startsWith("FST_") || status < 400 || status >= 500) return null;
  let message = err.message;
  let outCode = "invalid_request";
  if (code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    message = "The request body is larger than the server's limit.";
    outCode = "request_too_large";
  } else if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    message = "Unsupported Content-Type: send the body as application/json.";
    outCode = "unsupported_media_type";
  } else if (code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
    message = "The request body is empty; send a JSON object.";
    outCode = "invalid_body";
  } else if (code === "FST_ERR_BAD_URL") {
    // Fastify's message quotes the URL; a caller needs to know what is wrong, not to see it again.
    message = "The URL is not valid: a percent-encoded part does not decode to UTF-8 text.";
    outCode = "invalid_url";
  } else if (code === "FST_ERR_MAX_PARAM_LENGTH") {
    message = "A part of the URL is longer than the server accepts.";
    outCode = "url_too_long";
  } else if (code === "FST_ERR_CTP_INVALID_JSON_BODY" || /JSON/i.test(message)) {
    message = `The request body is not valid JSON: ${err.message}`;
    outCode = "invalid_json";
  }
  return {
    status,
    body: { error: { message, type: TYPE_BY_STATUS[status] ?? "invalid_request_error", param: null, code: outCode } },
    headers: {},
    unexpected: false,
  };
}

/** The one place any error becomes an OpenAI error envelope. Unknown errors never leak their details. */
export function toErrorEnvelope(err: unknown): MappedError {
  if (err instanceof TabAgentError) {
    return {
      status: err.status,
      body: { error: { message: err.message, type: err.type, param: err.param, code: err.code } },
      headers: err.headers,
      unexpected: false,
    };
  }
  if (err instanceof Error) {
    const mapped = fastifyError(err);
    if (mapped) return mapped;
    // JSON.parse failures from the body parser surface as SyntaxError with statusCode 400.
    if (err instanceof SyntaxError && (err as { statusCode?: number }).statusCode === 400) {
      return {
        status: 400,
        body: { error: { message: `The request body is not valid JSON: ${err.message}`, type: "invalid_request_error", param: null, code: "invalid_json" } },
        headers: {},
        unexpected: false,
      };
    }
  }
  return {
    status: 500,
    body: { error: { message: "The server had an internal error while processing the request.", type: "server_error", param: null, code: "server_error" } },
    headers: {},
    unexpected: true,
  };
}
