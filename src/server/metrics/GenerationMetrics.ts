import type { GenerationChunk } from "../../core/types.js";

/**
 * What the OpenAI routes record about generations and embeddings: `DaemonMetrics`, or `NO_METRICS` when the daemon
 * runs with metrics off. The routes call it the same way either way; the choice is made once, when the app is built.
 */
export interface GenerationMetrics {
  /** The stream to send: the engine's chunks, timed as the engine produces them (or the engine's stream itself). */
  instrumentGeneration(model: string, chunks: AsyncIterable<GenerationChunk>, startedAtMs?: number): AsyncIterable<GenerationChunk>;
  /** Token counts of an embedding request. */
  observeTokens(model: string, prompt: number, completion: number): void;
}

/** Metrics off: the engine's stream goes to the response untouched (no wrapping generator), and nothing is counted. */
export const NO_METRICS: GenerationMetrics = {
  instrumentGeneration: (_model, chunks) => chunks,
  observeTokens: () => undefined,
};
