import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createHostPolicy, isLoopbackHost } from "./createHostPolicy.js";
import { createKeyMatcher, type KeyMatcherOptions } from "./createKeyMatcher.js";
import { createOriginPolicy } from "./createOriginPolicy.js";
import { CorsOriginNotAllowedError, HostNotAllowedError, InvalidApiKeyError } from "./errors.js";
import { markTrusted } from "./requestTrust.js";

export interface SecurityOptions {
  /** Accepted bearer keys (resolveApiKeys). Empty: no authentication. */
  apiKeys: readonly string[];
  /** Extra `Host` names beyond loopback and the bind address; `*` turns the check off. */
  allowedHosts: readonly string[];
  /** Origins allowed to call from a browser; empty: CORS off. */
  corsOrigins: readonly string[];
  /** The listen address (config `host`): allowed as a Host name unless it is a wildcard. */
  bindHost: string;
  /** Route paths (as registered) that need no key. Default: `/health`, `/ready`. */
  openPaths?: readonly string[];
  /** Preflight cache lifetime, seconds. Default 600. */
  corsMaxAgeSeconds?: number;
  /** For tests: the comparison used for keys. */
  timingSafeEqual?: KeyMatcherOptions["timingSafeEqual"];
}

/** What is in force, for one startup log line (no keys in it). */
export interface SecuritySummary {
  auth: boolean;
  keyCount: number;
  hosts: readonly string[] | "*";
  cors: boolean;
}

const ALLOW_METHODS = "GET, POST, OPTIONS";
const DEFAULT_ALLOW_HEADERS = "authorization, content-type, x-request-id";
const EXPOSE_HEADERS = "x-request-id, retry-after";
/** A comma-separated list of header names (RFC 9110 tokens), as Access-Control-Request-Headers carries it. */
const HEADER_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

/**
 * The exposure layer, as one `onRequest` hook that runs before routing's handlers, for every route and for the
 * not-found handler (so unknown routes do not reveal themselves without a key). In order:
 *
 * 1. Host check (DNS rebinding): a `Host` that is not an allowed name → 403 `host_not_allowed`.
 * 2. CORS: a preflight is answered here (204 for an allowed origin; 403 `cors_origin_not_allowed` otherwise);
 *    other requests from an allowed origin get `Access-Control-Allow-Origin`, a disallowed one gets no CORS header.
 * 3. Authentication: `Authorization: Bearer <key>` must be a configured key, except on `openPaths` → 401
 *    `invalid_api_key` with `WWW-Authenticate: Bearer`. A request with a valid key (on an open path too) is marked
 *    trusted (`isTrusted`); without keys, every request is trusted when the server listens on loopback only.
 *
 * Failures are thrown as typed errors, so the app's error handler writes the OpenAI envelope. Register it after the
 * hook that sets `x-request-id`, so refusals carry the id too. All sets and key digests are built here, once.
 */
export function registerSecurity(app: FastifyInstance, options: SecurityOptions): SecuritySummary {
  const hosts = createHostPolicy(options.bindHost, options.allowedHosts);
  const origins = createOriginPolicy(options.corsOrigins);
  const matches = options.apiKeys.length > 0 ? createKeyMatcher(options.apiKeys, { timingSafeEqual: options.timingSafeEqual }) : null;
  const openPaths = new Set(options.openPaths ?? ["/health", "/ready"]);
  const maxAge = String(options.corsMaxAgeSeconds ?? 600);
  // Without keys nobody can prove who they are: only a loopback-only server trusts its callers.
  const trustAll = matches === null && isLoopbackHost(options.bindHost);

  /** Answers a preflight (returns true) or sets the CORS headers of an actual response. */
  function cors(request: FastifyRequest, reply: FastifyReply): boolean {
    const origin = request.headers.origin;
    const isPreflight = request.method === "OPTIONS" && origin !== undefined && request.headers["access-control-request-method"] !== undefined;
    if (isPreflight) {
      if (!origins.allows(origin)) throw new CorsOriginNotAllowedError(origin);
      const requested = request.headers["access-control-request-headers"];
      const headers: Record<string, string> = {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": typeof requested === "string" && requested.length <= 4096 && HEADER_LIST.test(requested) ? requested : DEFAULT_ALLOW_HEADERS,
        "access-control-max-age": maxAge,
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      };
      // Chrome's Private Network Access: a public page calling a loopback server asks first.
      if (request.headers["access-control-request-private-network"] === "true") headers["access-control-allow-private-network"] = "true";
      void reply.code(204).headers(headers).send();
      return true;
    }
    if (!origins.enabled) return false;
    // On the raw response: streamed replies are hijacked and write their own head, which merges these in.
    const raw = reply.raw;
    raw.setHeader("vary", "Origin");
    if (origin !== undefined && origins.allows(origin)) {
      raw.setHeader("access-control-allow-origin", origin);
      raw.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    }
    return false;
  }

  /**
   * Open only when both the path as sent and the route the router matched are open paths: the text test is cheap
   * and skips Fastify's routeOptions object on every other request; the route test keeps `POST /health` (a 404)
   * and odd spellings behind the key.
   */
  function isOpen(request: FastifyRequest): boolean {
    if (openPaths.size === 0) return false;
    const url = request.url;
    const query = url.indexOf("?");
    let path = query < 0 ? url : url.slice(0, query);
    if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
    if (!openPaths.has(path) || request.is404) return false;
    const route = request.routeOptions.url;
    return route !== undefined && openPaths.has(route);
  }

  /** "Bearer <key>", scheme case-insensitive; "" when there is none. */
  function bearerToken(request: FastifyRequest): string {
    const header = request.headers.authorization;
    if (header === undefined) return "";
    return header.length > 7 && header.charCodeAt(6) === 32 && header.slice(0, 6).toLowerCase() === "bearer" ? header.slice(7).trim() : "";
  }

  function authenticate(request: FastifyRequest): void {
    if (matches === null) {
      if (trustAll) markTrusted(request);
      return;
    }
    if (isOpen(request)) {
      // Open to all, but a caller with a valid key may see more; a wrong key is not refused here.
      const token = bearerToken(request);
      if (token !== "" && matches(token)) markTrusted(request);
      return;
    }
    const token = bearerToken(request);
    if (token === "") throw new InvalidApiKeyError("missing");
    if (!matches(token)) throw new InvalidApiKeyError("invalid");
    markTrusted(request);
  }

  app.addHook("onRequest", (request, reply, done) => {
    try {
      if (!hosts.allows(request.headers.host)) throw new HostNotAllowedError(request.headers.host);
      if (cors(request, reply)) return; // preflight answered
      authenticate(request);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });

  return { auth: matches !== null, keyCount: options.apiKeys.length, hosts: hosts.allowsAll ? "*" : hosts.names, cors: origins.enabled };
}
