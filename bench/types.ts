/** One generation stream as the caller saw it; all times are `performance.now()` milliseconds in the bench process. */
export interface StreamSample {
  /** When the request was issued (before any prompt work or HTTP); shared by the streams of a concurrent run. */
  startMs: number;
  /** When each non-empty piece of content arrived: one per token (direct), one per SSE content chunk (daemon). */
  arrivalsMs: number[];
  /** Generated tokens as counted by the engine (direct) or reported by `usage.completion_tokens` (daemon). */
  completionTokens: number;
  promptTokens: number;
  text: string;
  /** The decode rate the engine itself reported (llama-server's `timings.predicted_per_second`), when it did. */
  engineTokPerSec?: number;
  /** Stopped on purpose through StreamOptions.signal; its length is not checked. */
  aborted?: boolean;
}

/** The streams of one timed run: 1 at concurrency 1, N started together at concurrency N. */
export type RunSample = StreamSample[];

export interface StreamOptions {
  /** Request start to measure TTFT from; default: now. */
  startMs?: number;
  /** Called once, when the first content arrives. */
  onFirstToken?: () => void;
  /** Stops the stream early (the sample so far is returned, marked aborted). */
  signal?: AbortSignal;
}

/** Either side of the comparison: something that generates one stream for a chat prompt. */
export interface Streamer {
  stream(prompt: string, maxTokens: number, options?: StreamOptions): Promise<StreamSample>;
}
