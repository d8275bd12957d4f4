// Pure arithmetic of the `structured` and `sampling` suites (featuresBench.ts): the order conditions run in within a
// round, a treatment's ratio to its baseline with the A/A noise band next to it, and the first-request overhead.
import { median, percentile } from "./stats.js";
import type { RunSample } from "./types.js";

/** The conditions of one round, rotated by the round's index so that each takes each position equally often. */
export function roundOrder<T>(conditions: readonly T[], round: number): T[] {
  const k = conditions.length === 0 ? 0 : round % conditions.length;
  return [...conditions.slice(k), ...conditions.slice(0, k)];
}

export interface RatioWithNoise {
  /** Median over rounds of the treatment's rate. */
  treatment: number;
  /** Median over rounds of the baseline's rate (its first copy, "A"). */
  baseline: number;
  /** treatment / baseline. */
  ratio: number;
  /** Median of the baseline's second copy ("A'") over that of its first, computed as `ratio` is: "no difference" here. */
  aa: number;
  /** 25th and 75th percentiles of the per-round A'/A ratios: the round-to-round spread. */
  aaP25: number;
  aaP75: number;
  /**
   * How far from 1 a ratio of medians may land with no difference at all: the larger of |1 - aa| and the per-round
   * interquartile range over the square root of the rounds (roughly the standard error of a median's ratio).
   */
  noise: number;
}

/**
 * `treatment`, `baseline` and `baselineAgain` hold one rate per round (the same rounds, in order); NaN entries (a
 * round whose rate could not be computed) are left out of the medians and of the per-round A/A ratios.
 */
export function ratioWithNoise(treatment: readonly number[], baseline: readonly number[], baselineAgain: readonly number[]): RatioWithNoise {
  const finite = (v: readonly number[]) => v.filter((x) => Number.isFinite(x));
  const t = median(finite(treatment));
  const a = median(finite(baseline));
  const a2 = median(finite(baselineAgain));
  const perRound = baseline.map((x, i) => (baselineAgain[i] ?? Number.NaN) / x).filter((x) => Number.isFinite(x) && x > 0);
  const aa = a2 / a;
  const aaP25 = percentile(perRound, 25);
  const aaP75 = percentile(perRound, 75);
  const spread = perRound.length > 0 ? (aaP75 - aaP25) / Math.sqrt(perRound.length) : Number.NaN;
  const parts = [Math.abs(1 - aa), spread].filter((x) => Number.isFinite(x));
  const noise = parts.length > 0 ? Math.max(...parts) : Number.NaN;
  return { treatment: t, baseline: a, ratio: t / a, aa, aaP25, aaP75, noise };
}

export type Verdict = "PASS" | "MISS" | "MISS (within noise)" | "n/a";

/** PASS at or above the target; a miss by no more than the A/A noise is called so, since this run cannot tell it from none. */
export function verdict(r: Pick<RatioWithNoise, "ratio" | "noise">, target: number): Verdict {
  if (!Number.isFinite(r.ratio)) return "n/a";
  if (r.ratio >= target) return "PASS";
  return Number.isFinite(r.noise) && r.ratio >= target - r.noise ? "MISS (within noise)" : "MISS";
}

/**
 * What a request pays the first time it brings a schema: the median TTFT of first requests with a new schema minus
 * the median TTFT of later requests with an already seen one (grammars are cached per schema).
 */
export function firstRequestOverheadMs(firstTtftsMs: readonly number[], laterTtftsMs: readonly number[]): number {
  return median(firstTtftsMs) - median(laterTtftsMs);
}

/**
 * Generated tokens per second from the request's start to its last content, all streams of the run merged: TTFT
 * included. Unlike the decode rate (first to last content) it stays meaningful when a stream's chunks arrive
 * coalesced in a few bursts, as a tiny model relayed through a second HTTP hop does.
 */
export function wholeRate(run: RunSample): number {
  const tokens = run.reduce((n, s) => n + s.completionTokens, 0);
  const start = Math.min(...run.map((s) => s.startMs));
  const last = Math.max(...run.map((s) => s.arrivalsMs.at(-1) ?? Number.NEGATIVE_INFINITY));
  return last > start ? (tokens * 1000) / (last - start) : Number.NaN;
}

/** What the treatment adds per generated token, in microseconds, from two rates in tokens per second. */
export function addedUsPerToken(treatmentTokPerSec: number, baselineTokPerSec: number): number {
  return 1e6 / treatmentTokPerSec - 1e6 / baselineTokPerSec;
}
