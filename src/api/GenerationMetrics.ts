import type { GenerationChunk } from "../core/types.js";

/** Times one generation: `chunk` is called for every chunk as the engine produces it. */
export interface GenerationObserver {
  chunk(chunk: GenerationChunk): void;
}

/**
 * What the OpenAI routes record about generations and embeddings: `DaemonMetrics`, or `NO_METRICS` when the daemon
 * runs with metrics off. The routes call it the same way either way; the choice is made once, when the app is built.
 */
export interface GenerationMetrics {
  /** An observer for one generation's chunks (sendGeneration calls it as the engine produces them). */
  startGeneration(model: string, startedAtMs?: number): GenerationObserver;
  /** Token counts of an embedding request. */
  observeTokens(model: string, prompt: number, completion: number): void;
}

/** Metrics off: the engine's stream goes to the response untouched (no wrapping generator), and nothing is counted. */
const NO_OBSERVER: GenerationObserver = { chunk: () => undefined };

export const NO_METRICS: GenerationMetrics = {
  startGeneration: () => NO_OBSERVER,
  observeTokens: () => undefined,
};
