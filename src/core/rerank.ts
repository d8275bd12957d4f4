/** One rerank request as a backend sees it: validated, documents as plain texts. */
export interface RerankRequest {
  query: string;
  documents: string[];
  /** Body fields the schema does not know, passed to upstream servers only. */
  extraFields?: Record<string, unknown>;
}

/**
 * A backend's scores, one per document in request order. Local engines give the model's probability of relevance
 * (a sigmoid of a one-label head's logit, as sentence-transformers' CrossEncoder.predict does); an upstream's
 * scores pass through as it sent them.
 */
export interface RerankResult {
  scores: number[];
  promptTokens: number;
}

/** The logistic function: a one-label reranker's logit to a probability in (0, 1). */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
