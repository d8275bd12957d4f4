import type { FastifyReply } from "fastify";

/**
 * Request arrival on the `performance.now()` clock, for `DaemonMetrics.startGeneration`. Fastify keeps the
 * start time when the app has a logger or an onResponse hook (the daemon has both); otherwise this is "now".
 */
export function requestStartedAt(reply: FastifyReply): number {
  return performance.now() - reply.elapsedTime;
}
