import { describe, expect, it } from "vitest";
import { readAhead } from "../../../src/backends/generation/readAhead.js";

async function* numbers(n: number, log: string[], failAt = -1) {
  try {
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setImmediate(r));
      if (i === failAt) throw new Error(`boom at ${i}`);
      log.push(`made ${i}`);
      yield i;
    }
  } finally {
    log.push("closed");
  }
}

describe("readAhead", () => {
  it("yields everything in order", async () => {
    const out: number[] = [];
    for await (const x of readAhead(numbers(10, []), 3)) out.push(x);
    expect(out).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("onItem sees each item when the source produces it, before a slow consumer takes it", async () => {
    const seen: number[] = [];
    const it = readAhead(numbers(6, []), 8, (x) => seen.push(x));
    expect((await it.next()).value).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]); // all produced and observed; the consumer has taken one
    const rest: number[] = [];
    for await (const x of it) rest.push(x);
    expect(rest).toEqual([1, 2, 3, 4, 5]);
  });

  it("produces ahead of a slow consumer, bounded by capacity", async () => {
    const log: string[] = [];
    const it = readAhead(numbers(100, log), 4);
    expect((await it.next()).value).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(log.filter((l) => l.startsWith("made")).length).toBe(5); // 1 taken + 4 buffered
    await it.return!();
    expect(log.at(-1)).toBe("closed");
  });

  it("delivers items made before an error, then the error", async () => {
    const out: number[] = [];
    await expect(
      (async () => {
        for await (const x of readAhead(numbers(10, [], 3), 8)) out.push(x);
      })(),
    ).rejects.toThrow("boom at 3");
    expect(out).toEqual([0, 1, 2]);
  });

  it("closes the source when the consumer stops early", async () => {
    const log: string[] = [];
    for await (const x of readAhead(numbers(1000, log), 2)) if (x === 5) break;
    expect(log.at(-1)).toBe("closed");
    expect(log.filter((l) => l.startsWith("made")).length).toBeLessThan(12);
  });
});
