import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { EvictionPolicy } from "../../src/router/EvictionPolicy.js";
import type { ModelRunner } from "../../src/router/ModelRunner.js";
import { planEviction } from "../../src/router/planEviction.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

const r = (id: string, bytes: number, lastUsed: number, vramBytes = 0) => ({ id, bytes, vramBytes, lastUsed, busy: false, state: "loaded" as const });

describe("planEviction: RAM and VRAM", () => {
  it("a model's VRAM part does not count against the memory budget", () => {
    // 800 bytes resident, 600 of them on the GPU: 200 of RAM.
    const resident = [r("a", 800, 1, 600)];
    expect(planEviction(resident, { id: "b", bytes: 700 }, { maxLoaded: 0, memoryBudget: 1000 })).toEqual({ ok: true, victims: [] });
    // Counted whole, it would have to go.
    expect(planEviction([r("a", 800, 1)], { id: "b", bytes: 700 }, { maxLoaded: 0, memoryBudget: 1000 })).toEqual({ ok: true, victims: ["a"] });
    // A VRAM figure larger than the model is capped at its size.
    expect(planEviction([r("a", 800, 1, 5000)], { id: "b", bytes: 1000 }, { maxLoaded: 0, memoryBudget: 1000 })).toEqual({ ok: true, victims: [] });
  });

  it("a VRAM budget evicts GPU-resident models least recently used first, and refuses a model larger than it", () => {
    const resident = [r("a", 800, 5, 600), r("b", 800, 1, 600), r("c", 100, 0)];
    expect(planEviction(resident, { id: "d", bytes: 500, vramBytes: 500 }, { maxLoaded: 0, memoryBudget: 0, vramBudget: 1500 })).toEqual({
      ok: true,
      victims: ["c", "b"],
    });
    expect(planEviction([], { id: "d", bytes: 900, vramBytes: 900 }, { maxLoaded: 0, memoryBudget: 0, vramBudget: 800 })).toMatchObject({
      ok: false,
      retry: "never",
      reason: expect.stringMatching(/VRAM budget/),
    });
    const busy = [{ ...r("a", 800, 5, 600), busy: true }];
    expect(planEviction(busy, { id: "d", bytes: 500, vramBytes: 500 }, { maxLoaded: 0, memoryBudget: 0, vramBudget: 1000 })).toMatchObject({
      ok: false,
      retry: "busy",
      reason: expect.stringMatching(/use the VRAM budget/),
    });
  });
});

/** A runner as EvictionPolicy reads it: loaded, idle, with what its engine reports (runtime.vram_bytes). */
function fakeRunner(id: string, sizeBytes: number, lastUsed: number, runtime: Record<string, unknown> | null, evicted: string[]): ModelRunner {
  const runner = {
    backend: { descriptor: testDescriptor({ id, sizeBytes }) },
    status: { state: "loaded", running: 0, queued: 0, runtime },
    lastUsed,
    busy: false,
    pendingTransition: null,
    evict: () => {
      evicted.push(id);
      runner.status = { state: "unloaded", running: 0, queued: 0, runtime: null };
      return Promise.resolve();
    },
  };
  return runner as unknown as ModelRunner;
}

describe("EvictionPolicy learns a loaded model's VRAM from its engine", () => {
  it("keeps a model whose layers sit in VRAM when the RAM budget still fits, evicts one that reports none", async () => {
    const evicted: string[] = [];
    const runners = new Map<string, ModelRunner>();
    const policy = new EvictionPolicy({ runners, logger: pino({ level: "silent" }), idleTtlMs: 0, memoryBudgetBytes: 1000 });
    runners.set("gpu", fakeRunner("gpu", 800, 2, { gpu_layers: 33, vram_bytes: 700 }, evicted));
    await policy.makeRoom(testDescriptor({ id: "new", sizeBytes: 800 }), new AbortController().signal);
    expect(evicted).toEqual([]);
    runners.set("cpu", fakeRunner("cpu", 300, 1, { gpu_layers: 0, vram_bytes: null }, evicted));
    await policy.makeRoom(testDescriptor({ id: "new2", sizeBytes: 800 }), new AbortController().signal);
    expect(evicted).toEqual(["cpu"]);
  });
});
