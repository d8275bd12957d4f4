import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { toErrorEnvelope } from "../api/openai/errorEnvelope.js";
import { openaiRoutes, type RequestLimits } from "../api/routes/openaiRoutes.js";
import { RouteNotFoundError } from "../core/errors.js";
import { registerSecurity, type SecurityOptions } from "./security/registerSecurity.js";
import { DaemonMetrics } from "./metrics/DaemonMetrics.js";
import { NO_METRICS } from "./metrics/GenerationMetrics.js";
import { registerMetricsRoute, registerRequestMetrics } from "./metrics/registerMetricsRoute.js";
import { registerReadyRoute, type Readiness } from "./metrics/registerReadyRoute.js";
import { registerDocsRoutes } from "../api/openapi/registerDocsRoutes.js";
import type { ModelRouter } from "../router/ModelRouter.js";

export interface AppDeps {
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
  version?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

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
  version,
}: AppDeps): FastifyInstance {
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
    },
    // A caller's id is kept when it is safe to log; otherwise we make one.
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // One "request completed" line per request (onResponse hook below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
    routerOptions: { ignoreTrailingSlash: true },
  }) as unknown as FastifyInstance;

  // The API speaks JSON only: anything else is a 415, not a string body.
  app.removeContentTypeParser("text/plain");

  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  // Host check (DNS rebinding), CORS, then API keys: before any route, the 404 handler included.
  const summary = registerSecurity(app, security);
  logger.info({ security: summary }, "request checks");
  if (metrics) {
    registerRequestMetrics(app, metrics);
    registerMetricsRoute(app, metrics);
  }
  registerReadyRoute(app, isReady);
  registerDocsRoutes(app, { version });
  app.addHook("onResponse", async (request, reply) => {
    request.log.info(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request completed",
    );
  });

  app.setErrorHandler(async (err, request, reply) => {
    const mapped = toErrorEnvelope(err);
    if (mapped.unexpected) request.log.error({ err }, "unexpected error");
    else request.log.info({ status: mapped.status, code: mapped.body.error.code, reason: mapped.body.error.message }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    return reply.code(mapped.status).headers(mapped.headers).send(mapped.body);
  });

  app.setNotFoundHandler(async (request) => {
    throw new RouteNotFoundError(`Unknown route: ${request.method} ${request.url.split("?")[0]}`, { code: "unknown_route" });
  });

  app.get("/health", async () => {
    const models = router.status();
    return {
      status: "ok",
      models: models.map((m) => ({ id: m.descriptor.id, state: m.state, running: m.running, queued: m.queued })),
      loaded: models.filter((m) => m.state === "loaded").map((m) => m.descriptor.id),
      upstreams: router.upstreamStatus().map(({ name, baseUrl, state, error }) => ({ name, base_url: baseUrl, state, error })),
    };
  });

  openaiRoutes(app, { router, shutdownSignal, limits, metrics: metrics ?? NO_METRICS });
  return app;
}
