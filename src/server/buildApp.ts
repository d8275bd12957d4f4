import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { toErrorEnvelope } from "../api/openai/errorEnvelope.js";
import { parseJsonBody } from "../api/openai/parseJsonBody.js";
import { openaiRoutes, type RequestLimits } from "../api/routes/openaiRoutes.js";
import { InvalidRequestError, RouteNotFoundError, ServiceUnavailableError } from "../core/errors.js";
import { answerClientError } from "./answerClientError.js";
import { HttpProtocolError } from "./HttpProtocolError.js";
import { redactUrl } from "./redactUrl.js";
import { isTrusted } from "./security/requestTrust.js";
import { registerSecurity, type SecurityOptions } from "./security/registerSecurity.js";
import { DaemonMetrics } from "./metrics/DaemonMetrics.js";
import { NO_METRICS } from "../api/GenerationMetrics.js";
import { registerMetricsRoute, registerRequestMetrics } from "./metrics/registerMetricsRoute.js";
import { registerReadyRoute, type Readiness } from "./metrics/registerReadyRoute.js";
import { registerDocsRoutes } from "../api/openapi/registerDocsRoutes.js";
import type { ModelRouter } from "../router/ModelRouter.js";
import { managementRoutes, type ManagementOptions } from "../api/management/managementRoutes.js";
import { registerWebPage, WEB_PATHS } from "./web/registerWebPage.js";
import { apiCounters } from "./metrics/apiCounters.js";

interface AppDeps {
  router: ModelRouter;
  logger: Logger;
  bodyLimitBytes: number;
  /** Aborts in-flight generations when the shutdown grace period runs out. */
  shutdownSignal: AbortSignal;
  limits: RequestLimits;
  /** A request's headers and body must arrive within this time. */
  requestTimeoutMs: number;
  /** Connections with no traffic for this long are closed. */
  idleTimeoutMs: number;
  /** API keys, Host allow-list and CORS origins; default: no keys, loopback names, no CORS. */
  security?: SecurityOptions;
  /**
   * Prometheus series for this daemon (one registry per daemon); default: a fresh registry. null: metrics off, so no
   * per-request hook, no `/metrics` route (404) and generations are not instrumented.
   */
  metrics?: DaemonMetrics | null;
  /** Readiness for `/ready`: false while draining. */
  isReady?: () => Readiness;
  /**
   * True once shutdown has begun: requests still arriving (on kept-alive connections) are answered 503
   * `shutting_down` with `Connection: close`, except the probes `/health` and `/ready`. Default: from `app.close()`.
   */
  isDraining?: () => boolean;
  version?: string;
  /** Config `timings`: every chat/completion answer carries llama-server's `timings` unless the request opts out. */
  timings?: boolean;
  /** The management API under /api (docs/api.md); absent: no /api routes. */
  management?: Omit<ManagementOptions, "router" | "counters" | "isTrusted" | "version" | "shutdownSignal">;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest path parameter (a model id in `/v1/models/:id`); longer ones are a 414 `url_too_long`. */
const MAX_PARAM_LENGTH = 1024;
/** Routes that still answer while draining: probes start no work, and `/ready` says why it is not ready. */
const ANSWERED_WHILE_DRAINING = new Set(["/health", "/ready"]);

/** The 415 for a body whose Content-Type the API does not take. */
function unsupportedMediaType(): HttpProtocolError {
  return new HttpProtocolError(415, "Unsupported Content-Type: send the body as application/json.", "unsupported_media_type");
}

/**
 * A body sent as a form (curl -d's default) or with no Content-Type: taken when it is JSON. Otherwise a form is a
 * 415 and an unlabelled body a 400, each saying what was sent and what the API expects.
 */
function parseUnlabelledJson(text: string, method: string, sent: "form" | "none"): unknown {
  try {
    return parseJsonBody(text, method);
  } catch (err) {
    if (!(err instanceof InvalidRequestError) || err.code !== "invalid_json") throw err;
    if (sent === "form") {
      throw new HttpProtocolError(
        415,
        "The body was sent as application/x-www-form-urlencoded (curl -d's default) and is not JSON: this API takes a JSON object; send it with Content-Type: application/json.",
        "unsupported_media_type",
      );
    }
    const detail = err.message.replace(/^The request body is not valid JSON: /, "");
    throw new InvalidRequestError(`The request has no Content-Type and its body is not JSON (${detail}); send a JSON object with Content-Type: application/json.`, {
      code: "invalid_json",
    });
  }
}

/** Requests whose connection closed before their response was complete (logged once, by logCancellation). */
const cancelled = new WeakSet<object>();

/**
 * One line for a request whose connection closed before its response was complete (a client that cancelled or
 * gave up, or a connection cut at shutdown), streamed or not, whichever stage it had reached.
 */
function logCancellation(request: FastifyRequest, reply: FastifyReply): void {
  reply.raw.once("close", () => {
    if (reply.raw.writableFinished) return;
    cancelled.add(request.raw);
    request.log.info(
      { method: request.method, url: redactUrl(request.url), ms: Math.round(reply.elapsedTime), responseStarted: reply.raw.headersSent },
      "request cancelled: the connection closed before the response was complete",
    );
  });
}

/** The HTTP app as a value: routes, error mapping, request ids. It never listens; startServer does. */
export function buildApp({
  router,
  logger,
  bodyLimitBytes,
  shutdownSignal,
  limits,
  requestTimeoutMs,
  idleTimeoutMs,
  security = { apiKeys: [], allowedHosts: [], corsOrigins: [], bindHost: "127.0.0.1" },
  metrics = new DaemonMetrics({ processMetrics: false }),
  isReady = () => ({ ready: true }),
  isDraining = () => false,
  version,
  timings = false,
  management,
}: AppDeps): FastifyInstance {
  let closing = false;
  const draining = () => closing || isDraining();

  /** Every refusal, from a route, a hook or the router itself, leaves as the OpenAI envelope. */
  const sendError = (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toErrorEnvelope(err);
    if (mapped.unexpected) request.log.error({ err }, "unexpected error");
    // A request whose client went away has its line already (logCancellation): the abort that follows is no news.
    else if (cancelled.has(request.raw)) request.log.debug({ status: mapped.status, code: mapped.body.error.code }, "request failed after its connection closed");
    else request.log.info({ status: mapped.status, code: mapped.body.error.code, reason: mapped.body.error.message }, "request failed");
    if (reply.sent || reply.raw.headersSent) return reply;
    return reply.code(mapped.status).headers(mapped.headers).send(mapped.body);
  };

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: bodyLimitBytes,
    requestTimeout: requestTimeoutMs,
    connectionTimeout: idleTimeoutMs,
    // Node reads these when the server is created (setting them afterwards has no effect) and checks them on an
    // interval that defaults to 30 s, too coarse for a short timeout.
    http: {
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(requestTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(requestTimeoutMs / 4))),
      // Node answers a missing Host with an empty 400 of its own; the first hook answers it with the envelope.
      requireHostHeader: false,
    },
    // Requests Node's parser refuses (bad request line, conflicting lengths, headers too large, too slow) and the
    // router's own refusals (undecodable or overlong URLs) get the envelope too, not Node's or Fastify's bodies.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket, logger),
    frameworkErrors: (err: FastifyError, request, reply) => {
      reply.header("x-request-id", request.id);
      void sendError(err, request, reply);
      // No hook runs for these: the one line onResponse would have written (the URL cut short, it may be huge).
      request.log.info({ method: request.method, url: redactUrl(request.url).slice(0, 256), status: reply.statusCode }, "request completed");
    },
    // A caller's id is kept when it is safe to log; otherwise we make one.
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // One "request completed" line per request (onResponse hook below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Draining is answered by the first hook (the envelope, `Connection: close`), not by Fastify's own 503 body.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
  }) as unknown as FastifyInstance;

  // The API speaks JSON only: anything else is a 415, not a string body.
  app.removeContentTypeParser("text/plain");
  // Fastify's JSON parser calls a `__proto__` key invalid JSON and refuses an empty DELETE/OPTIONS body.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    try {
      done(null, parseJsonBody(body as string, request.method));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  // `curl -d '{...}'` labels JSON as a form, and some clients send no type at all: a body that parses as JSON is
  // taken; one that does not is told what was wrong. Any other explicit type stays a 415.
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (request, body, done) => {
    try {
      done(null, parseUnlabelledJson(body as string, request.method, "form"));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    // The catch-all also sees every type with no parser: those keep their 415 (an unknown route its 404).
    if (request.headers["content-type"] !== undefined) {
      done(request.is404 ? null : unsupportedMediaType(), undefined);
      return;
    }
    try {
      done(null, parseUnlabelledJson(body as string, request.method, "none"));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });

  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    logCancellation(request, reply);
    if (request.raw.httpVersion === "1.1" && request.headers.host === undefined) {
      reply.header("connection", "close");
      throw new HttpProtocolError(400, "HTTP/1.1 requests must carry a Host header.", "missing_host");
    }
    if (draining()) {
      reply.header("connection", "close");
      if (!ANSWERED_WHILE_DRAINING.has(request.routeOptions.url ?? "")) {
        throw new ServiceUnavailableError("The server is shutting down and takes no new requests; retry against another instance or once it is back.", {
          code: "shutting_down",
        });
      }
    }
  });
  // Host check (DNS rebinding), CORS, then API keys: before any route, the 404 handler included.
  // The page and its assets open without a key: they hold no data, and the page asks for the key itself.
  const summary = registerSecurity(app, { ...security, openPaths: [...(security.openPaths ?? ["/health", "/ready"]), ...WEB_PATHS] });
  logger.info({ security: summary }, "request checks");
  if (metrics) {
    registerRequestMetrics(app, metrics);
    registerMetricsRoute(app, metrics);
  }
  registerReadyRoute(app, isReady);
  registerDocsRoutes(app, { version });
  registerWebPage(app);
  app.addHook("onResponse", async (request, reply) => {
    request.log.info({ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "request completed");
  });

  app.setErrorHandler(async (err, request, reply) => sendError(err, request, reply));

  app.setNotFoundHandler(async (request) => {
    const path = request.url.split("?")[0];
    throw new RouteNotFoundError(`Unknown route: ${request.method} ${path}`, { code: "unknown_route" });
  });

  app.get("/health", async (request) => {
    const models = router.status();
    // Open without a key: where upstreams live (and their errors, which name hosts) only for trusted callers.
    const trusted = isTrusted(request);
    return {
      status: "ok",
      ...(version === undefined ? {} : { version }),
      models: models.map((m) => ({ id: m.descriptor.id, state: m.state, running: m.running, queued: m.queued })),
      loaded: models.filter((m) => m.state === "loaded").map((m) => m.descriptor.id),
      upstreams: router.upstreamStatus().map(({ name, baseUrl, state, error }) => (trusted ? { name, base_url: baseUrl, state, error } : { name, state })),
    };
  });

  openaiRoutes(app, { router, shutdownSignal, limits, metrics: metrics ?? NO_METRICS, timings });
  if (management) managementRoutes(app, { ...management, router, counters: apiCounters(metrics), isTrusted, version, shutdownSignal });
  return app;
}
