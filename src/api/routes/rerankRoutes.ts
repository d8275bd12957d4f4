import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { backendOperation } from "../../backends/Backend.js";
import type { ModelRouter } from "../../router/ModelRouter.js";
import type { GenerationMetrics } from "../GenerationMetrics.js";
import { parseBody } from "../openai/parseBody.js";
import { rankResults, rerankBodySchema, toRerankRequest } from "../openai/rerankSchema.js";
import { requestSignal } from "../requestSignal.js";

interface RerankRoutesOptions {
  router: ModelRouter;
  metrics: GenerationMetrics;
  shutdownSignal: AbortSignal;
}

/** `/v1/rerank` and the other names llama-server answers to, so clients written for it work unchanged. */
export const RERANK_PATHS = ["/v1/rerank", "/v1/reranking", "/rerank", "/reranking"] as const;

/** Fields the schema does not know: logged, and passed to upstream servers only (local engines have no use for them). */
function unknownFields(request: FastifyRequest): Record<string, unknown> | undefined {
  const body = request.body as Record<string, unknown>;
  const known = Object.keys(rerankBodySchema.shape);
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length === 0) return undefined;
  request.log.debug({ fields: unknown }, "unknown rerank fields: passed to upstream servers, ignored by local engines");
  return Object.fromEntries(unknown.map((k) => [k, body[k]]));
}

/**
 * Rerank (the Jina/Cohere shape): the model scores each document against the query; the answer lists them by
 * score, highest first, cut to `top_n`. Served by models whose task is `rerank` on engines with the capability.
 */
export function rerankRoutes(app: FastifyInstance, { router, metrics, shutdownSignal }: RerankRoutesOptions): void {
  for (const path of RERANK_PATHS) {
    app.post(path, async (request, reply) => {
      const body = parseBody(rerankBodySchema, request.body);
      const signal = requestSignal(request, reply, shutdownSignal);
      await router.check(body.model, "rerank", [], signal);
      const rerankRequest = { ...toRerankRequest(body), extraFields: unknownFields(request) };
      const lease = await router.acquire(body.model, "rerank", signal);
      try {
        const result = await backendOperation(lease.backend, "rerank")(rerankRequest, signal);
        metrics.observeTokens(body.model, result.promptTokens, 0);
        return {
          id: `rerank-${randomUUID()}`,
          object: "list",
          model: body.model,
          results: rankResults(rerankRequest.documents, result.scores, body),
          usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
        };
      } finally {
        lease.release();
      }
    });
  }
}
