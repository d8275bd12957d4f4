import type { FastifyInstance } from "fastify";
import { toErrorEnvelope } from "../../api/openai/errorEnvelope.js";
import { ServiceUnavailableError } from "../../core/errors.js";

export interface Readiness {
  ready: boolean;
  /** Why not, as a short code (`draining`, `loading`, ...); it becomes the error envelope's `code`. */
  reason?: string;
}

/**
 * `GET /ready` (and HEAD): 200 `{"status":"ready"}`, or 503 with the OpenAI error envelope whose `code` is the
 * reason. For load balancers and orchestrators; `/health` stays 200 while the process serves at all.
 */
export function registerReadyRoute(app: FastifyInstance, isReady: () => Readiness): void {
  app.get("/ready", async (_request, reply) => {
    reply.header("cache-control", "no-store");
    const { ready, reason } = isReady();
    if (ready) return { status: "ready" };
    const code = reason ?? "not_ready";
    const mapped = toErrorEnvelope(new ServiceUnavailableError(`The server is not ready: ${code}.`, { code }));
    return reply.code(mapped.status).headers(mapped.headers).send(mapped.body);
  });
}
