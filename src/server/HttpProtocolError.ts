import { TabAgentError } from "../core/errors.js";

/**
 * A request the HTTP layer refuses before any route sees it: a malformed request line or framing, headers too
 * large, a request that did not arrive in time, no `Host`, a URL that does not decode, a body of a type the API does
 * not take. The status is the one HTTP prescribes (400, 408, 414, 415, 431); the envelope says what to fix.
 */
export class HttpProtocolError extends TabAgentError {
  override readonly status: number;
  override readonly type = "invalid_request_error" as const;
  constructor(status: 400 | 408 | 414 | 415 | 431, message: string, code: string) {
    super(message, { code });
    this.status = status;
  }
}
