import { z } from "zod";
import { InvalidRequestError } from "../../core/errors.js";
import type { RerankRequest } from "../../core/rerank.js";

/** Most documents one request may rank (Cohere's limit too); over it: 400 `limit_exceeded` naming the limit. */
export const MAX_RERANK_DOCUMENTS = 1000;
/** Most characters the query and documents may hold together; over it: 400 `limit_exceeded` naming the limit. */
export const MAX_RERANK_CHARACTERS = 4_000_000;

/** A document: a string, or an object with `text` (Jina and Cohere accept both); nothing else is read from it. */
const documentSchema = z.union([z.string(), z.strictObject({ text: z.string() })]);

/**
 * The Jina/Cohere rerank body that llama-server and vLLM serve. Fields it does not know are passed on to upstream
 * servers (and logged) like the other routes do; local engines have nothing to do with them.
 */
export const rerankBodySchema = z.object({
  model: z.string().min(1, "must be a model id"),
  query: z.string().min(1, "must not be empty"),
  documents: z.array(documentSchema),
  top_n: z.number().int("must be an integer").min(1, "must be at least 1").nullable().optional(),
  return_documents: z.boolean().nullable().optional(),
});
export type RerankBody = z.infer<typeof rerankBodySchema>;

/** The request a backend sees; a request over a limit or without documents is a 400 naming the parameter. */
export function toRerankRequest(body: RerankBody): RerankRequest {
  const documents = body.documents.map((d) => (typeof d === "string" ? d : d.text));
  if (documents.length === 0) {
    throw new InvalidRequestError("'documents' is empty; give at least one document to rank.", { param: "documents", code: "invalid_value" });
  }
  if (documents.length > MAX_RERANK_DOCUMENTS) {
    throw new InvalidRequestError(`'documents' has ${documents.length} entries, more than this server allows (${MAX_RERANK_DOCUMENTS}).`, {
      param: "documents",
      code: "limit_exceeded",
    });
  }
  const characters = documents.reduce((n, d) => n + d.length, body.query.length);
  if (characters > MAX_RERANK_CHARACTERS) {
    throw new InvalidRequestError(`'query' and 'documents' hold ${characters} characters together, more than this server allows (${MAX_RERANK_CHARACTERS}).`, {
      param: "documents",
      code: "limit_exceeded",
    });
  }
  return { query: body.query, documents };
}

export interface RankedDocument {
  index: number;
  relevance_score: number;
  document?: { text: string };
}

/** Results by score, highest first (ties keep request order), cut to `top_n`, with the texts when asked. */
export function rankResults(documents: readonly string[], scores: readonly number[], body: RerankBody): RankedDocument[] {
  const withText = body.return_documents ?? true;
  const order = scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score || a.index - b.index);
  return order.slice(0, body.top_n ?? order.length).map(({ index, score }) => ({
    index,
    relevance_score: score,
    ...(withText ? { document: { text: documents[index]! } } : {}),
  }));
}

/** The answer, as documented in the OpenAPI page. */
export const rerankResponseSchema = z.object({
  id: z.string(),
  object: z.literal("list"),
  model: z.string(),
  results: z.array(
    z.object({
      index: z.number().int().nonnegative().meta({ description: "The document's position in the request." }),
      relevance_score: z.number().meta({
        description:
          "Local engines: the probability of relevance in (0, 1), the sigmoid of the reranker's logit (as CrossEncoder.predict gives it). Upstream models: the upstream's score as sent.",
      }),
      document: z.object({ text: z.string() }).optional().meta({ description: "With `return_documents` (default true)." }),
    }),
  ),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), total_tokens: z.number().int().nonnegative() }),
});
