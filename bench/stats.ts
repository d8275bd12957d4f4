import type { RunSample } from "./types.js";

export interface ConfigSummary {
  runs: number;
  streamsPerRun: number;
  /** Median over runs of the run's decode rate (see decodeRate). */
  decodeTokPerSec: number;
  /** Every run's decode rate, to show the spread. */
  decodeTokPerSecRuns: number[];
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
  /** Request start -> last content, per stream: what a client waits for the whole answer. */
  totalMs: { p50: number; p99: number };
}

/** Linear-interpolated percentile (numpy's default) of an unsorted sample; NaN for an empty one. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * Tokens per second between the first and the last token of a run, all streams merged: (N - 1) tokens arrived
 * after the first one, over that window. At concurrency 1 this is the stream's own decode rate; at concurrency N it
 * is the aggregate rate, and prompt processing (before the first token) is excluded in both cases.
 */
function decodeRate(run: RunSample): number {
  const tokens = run.reduce((n, s) => n + s.completionTokens, 0);
  const first = Math.min(...run.map((s) => s.arrivalsMs[0] ?? Number.POSITIVE_INFINITY));
  const last = Math.max(...run.map((s) => s.arrivalsMs.at(-1) ?? Number.NEGATIVE_INFINITY));
  return last > first ? ((tokens - 1) * 1000) / (last - first) : Number.NaN;
}

export function summarize(runs: readonly RunSample[]): ConfigSummary {
  const rates = runs.map(decodeRate);
  const ttft: number[] = [];
  const itl: number[] = [];
  const total: number[] = [];
  for (const run of runs) {
    for (const s of run) {
      const first = s.arrivalsMs[0];
      if (first !== undefined) ttft.push(first - s.startMs);
      const last = s.arrivalsMs.at(-1);
      if (last !== undefined) total.push(last - s.startMs);
      for (let i = 1; i < s.arrivalsMs.length; i++) itl.push(s.arrivalsMs[i]! - s.arrivalsMs[i - 1]!);
    }
  }
  return {
    runs: runs.length,
    streamsPerRun: runs[0]?.length ?? 0,
    decodeTokPerSec: median(rates),
    decodeTokPerSecRuns: rates,
    ttftMs: { p50: percentile(ttft, 50), p99: percentile(ttft, 99) },
    itlMs: { p50: percentile(itl, 50), p99: percentile(itl, 99) },
    totalMs: { p50: percentile(total, 50), p99: percentile(total, 99) },
  };
}
