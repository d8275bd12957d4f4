import { describe, expect, it } from "vitest";
import { addedUsPerToken, firstRequestOverheadMs, ratioWithNoise, roundOrder, verdict, wholeRate } from "../../bench/featureStats.js";

describe("bench featureStats", () => {
  it("rotates the conditions so each takes each position once per cycle", () => {
    expect(roundOrder(["a", "b", "c"], 0)).toEqual(["a", "b", "c"]);
    expect(roundOrder(["a", "b", "c"], 1)).toEqual(["b", "c", "a"]);
    expect(roundOrder(["a", "b", "c"], 5)).toEqual(["c", "a", "b"]);
    expect(roundOrder([], 3)).toEqual([]);
  });

  it("gives the ratio of medians and the A/A band, leaving out NaN rounds", () => {
    const r = ratioWithNoise([90, 80, 100, Number.NaN], [100, 100, 100, 100], [100, 110, 90, Number.NaN]);
    expect(r.treatment).toBe(90);
    expect(r.baseline).toBe(100);
    expect(r.ratio).toBeCloseTo(0.9);
    expect(r.aa).toBeCloseTo(1);
    expect(r.aaP25).toBeCloseTo(0.95);
    expect(r.aaP75).toBeCloseTo(1.05);
    expect(r.noise).toBeCloseTo(0.1 / Math.sqrt(3));
  });

  it("calls a miss within the A/A noise so, and a clear one a miss", () => {
    expect(verdict({ ratio: 0.91, noise: 0.01 }, 0.9)).toBe("PASS");
    expect(verdict({ ratio: 0.88, noise: 0.05 }, 0.9)).toBe("MISS (within noise)");
    expect(verdict({ ratio: 0.8, noise: 0.05 }, 0.9)).toBe("MISS");
    expect(verdict({ ratio: Number.NaN, noise: 0.05 }, 0.9)).toBe("n/a");
  });

  it("computes whole-request rates, per-token cost and the first-request overhead", () => {
    const stream = (startMs: number, arrivalsMs: number[], completionTokens: number) => ({ startMs, arrivalsMs, completionTokens, promptTokens: 1, text: "" });
    expect(wholeRate([stream(0, [10, 50], 50), stream(0, [20, 100], 50)])).toBeCloseTo(1000);
    expect(addedUsPerToken(500, 1000)).toBeCloseTo(1000);
    expect(firstRequestOverheadMs([30, 10, 20], [5, 6, 7])).toBe(14);
  });
});
