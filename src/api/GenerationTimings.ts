import type { GenerationChunk, Usage } from "../core/types.js";

/** llama-server's `timings` object, as every engine's answer carries it when asked (docs/api.md "Timings"). */
export interface Timings {
  prompt_n: number;
  prompt_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_second: number;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const rate = (n: number, ms: number) => (ms > 0 ? round((n * 1000) / ms) : 0);

/**
 * Times one generation the same way on every engine: from the moment the engine is handed the request (the model
 * loaded, a slot held) to its first generated output (prompt), and from there to its last chunk (predicted). Counts
 * come from the answer's usage. Fed by sendGeneration's chunk observer, so times are taken as the engine produces.
 */
export class GenerationTimer {
  private readonly startedAt: number;
  private firstAt: number | null = null;
  private lastAt: number | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.startedAt = now();
  }

  chunk(chunk: GenerationChunk): void {
    const t = this.now();
    if (chunk.type === "usage" || (chunk.type === "token_ids" && chunk.prompt)) return;
    this.firstAt ??= t;
    this.lastAt = t;
  }

  timings(usage: Usage): Timings {
    const end = this.now();
    const first = this.firstAt ?? end;
    const last = this.lastAt ?? first;
    const promptMs = round(first - this.startedAt);
    const predictedMs = round(last - first);
    return {
      prompt_n: usage.promptTokens,
      prompt_ms: promptMs,
      prompt_per_second: rate(usage.promptTokens, promptMs),
      predicted_n: usage.completionTokens,
      predicted_ms: predictedMs,
      predicted_per_second: rate(usage.completionTokens, predictedMs),
    };
  }
}
