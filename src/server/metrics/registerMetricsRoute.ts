import { performance } from "node:perf_hooks";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { UNMATCHED_ROUTE, type DaemonMetrics } from "./DaemonMetrics.js";
import { getRequestModel } from "./requestModel.js";
import { getStreamFailure } from "../../api/streamFailure.js";

/** Status recorded for a response the client abandoned before it was complete (nginx's "client closed request"). */
const CLIENT_CLOSED_STATUS = 499;

/** `GET /metrics`: every series of this daemon's registry, in the Prometheus text format. */
export function registerMetricsRoute(app: FastifyInstance, metrics: DaemonMetrics): void {
  app.get("/metrics", async (_request, reply) => {
    const body = await metrics.scrape();
    return reply.header("cache-control", "no-store").type(metrics.contentType).send(body);
  });
}

/** The route pattern (`/v1/models/:id`), never the raw URL: every unmatched URL shares one label. */
function routeLabel(request: FastifyRequest): string {
  if (request.is404) return UNMATCHED_ROUTE;
  return request.routeOptions.url ?? UNMATCHED_ROUTE;
}

/**
 * Records every request once, when its response closes (`tabagent_requests_total`,
 * `tabagent_request_duration_seconds`): route pattern, model (`setRequestModel`, else the body's `model`), status,
 * duration. It listens for the response's `close` rather than using an onResponse hook because Fastify runs no
 * onResponse for a hijacked stream the client abandons; such a response is recorded with status 499. A stream that
 * ended with an SSE error event is recorded with that event's status (`setStreamFailure`), not the 200 its head
 * carried. Requests refused before routing (malformed URLs, protocol errors) are not seen. Add it before the routes.
 */
export function registerRequestMetrics(app: FastifyInstance, metrics: DaemonMetrics): void {
  app.addHook("onRequest", (request, reply, done) => {
    const started = performance.now();
    const res = reply.raw;
    // "close" is emitted once per response, finished or not.
    res.on("close", () => {
      const status = res.writableFinished ? (getStreamFailure(request) ?? reply.statusCode) : CLIENT_CLOSED_STATUS;
      metrics.observeRequest(routeLabel(request), getRequestModel(request), status, (performance.now() - started) / 1000);
    });
    done();
  });
}
