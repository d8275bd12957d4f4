import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import type { TabAgentError } from "../../src/core/errors.js";
import { ServiceUnavailableError } from "../../src/core/errors.js";
import type { ModelDescriptor } from "../../src/core/types.js";
import { ModelRegistry } from "../../src/registry/ModelRegistry.js";
import { ModelRouter, type ModelRouterOptions } from "../../src/router/ModelRouter.js";
import { planEviction } from "../../src/router/planEviction.js";
import { FakeClock } from "../helpers/FakeClock.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

class FakeBackend implements Backend {
  readonly parallel = 2;
  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly log: string[],
  ) {}
  async load(): Promise<void> {
    this.log.push(`load ${this.descriptor.id}`);
  }
  async unload(): Promise<void> {
    this.log.push(`unload ${this.descriptor.id}`);
  }
}

const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function setup(sizes: Record<string, number>, options: Partial<ModelRouterOptions> = {}) {
  const clock = new FakeClock();
  const log: string[] = [];
  const registry = new ModelRegistry(Object.entries(sizes).map(([id, sizeBytes]) => testDescriptor({ id, sizeBytes })));
  const router = new ModelRouter({
    registry,
    clock,
    logger: pino({ level: "silent" }),
    idleTtlMs: 0,
    queueSize: 4,
    backends: { "node-llama-cpp": (d) => new FakeBackend(d, log) },
    ...options,
  });
  const signal = new AbortController().signal;
  /** One request: acquire, then release. */
  const use = async (id: string) => (await router.acquire(id, "chat", signal)).release();
  const loaded = () =>
    router
      .status()
      .filter((s) => s.state === "loaded" && !s.aliasOf)
      .map((s) => s.descriptor.id)
      .sort();
  return { clock, log, router, signal, use, loaded };
}

describe("planEviction", () => {
  const r = (id: string, bytes: number, lastUsed: number, busy = false, state: "loaded" | "loading" | "unloading" = "loaded") => ({ id, bytes, lastUsed, busy, state });

  it("evicts least recently used idle models until the new one fits", () => {
    const resident = [r("a", 400, 30), r("b", 300, 10), r("c", 200, 20)];
    expect(planEviction(resident, { id: "d", bytes: 500 }, { maxLoaded: 0, memoryBudget: 1000 })).toEqual({ ok: true, victims: ["b", "c"] });
    expect(planEviction(resident, { id: "d", bytes: 100 }, { maxLoaded: 0, memoryBudget: 1000 })).toEqual({ ok: true, victims: [] });
    expect(planEviction(resident, { id: "d", bytes: 1 }, { maxLoaded: 2, memoryBudget: 0 })).toEqual({ ok: true, victims: ["b", "c"] });
  });

  it("never picks a busy, loading or unloading model", () => {
    const resident = [r("a", 400, 0, true), r("b", 300, 1, false, "loading"), r("c", 200, 2)];
    expect(planEviction(resident, { id: "d", bytes: 500 }, { maxLoaded: 0, memoryBudget: 1000 })).toMatchObject({ ok: false, retry: "wait" });
    expect(planEviction([r("a", 400, 0, true)], { id: "d", bytes: 700 }, { maxLoaded: 0, memoryBudget: 1000 })).toMatchObject({ ok: false, retry: "busy" });
    expect(planEviction([], { id: "d", bytes: 2000 }, { maxLoaded: 0, memoryBudget: 1000 })).toMatchObject({ ok: false, retry: "never" });
  });
});

describe("ModelRouter lifecycle", () => {
  it("unloads each model after its own idle TTL", async () => {
    const { clock, use, loaded } = setup({ a: 1, b: 1 }, { idleTtlMs: 5000, idleTtlFor: (id) => (id === "a" ? 1000 : undefined) });
    await use("a");
    await use("b");
    expect(loaded()).toEqual(["a", "b"]);
    clock.advance(1000);
    await tick();
    expect(loaded()).toEqual(["b"]);
    clock.advance(4000);
    await tick();
    expect(loaded()).toEqual([]);
  });

  it("keeps at most maxLoadedModels loaded, evicting the least recently used", async () => {
    const { clock, log, use, loaded } = setup({ a: 1, b: 1, c: 1 }, { maxLoadedModels: 2 });
    await use("a");
    clock.advance(10);
    await use("b");
    clock.advance(10);
    await use("c");
    expect(loaded()).toEqual(["b", "c"]);
    clock.advance(10);
    await use("b"); // b is now more recent than c
    clock.advance(10);
    await use("a");
    expect(loaded()).toEqual(["a", "b"]);
    expect(log).toEqual(["load a", "load b", "unload a", "load c", "unload c", "load a"]);
  });

  it("keeps the estimated memory of loaded models within the budget, evicting in LRU order", async () => {
    const { clock, log, use, loaded } = setup({ a: 400, b: 300, c: 500 }, { memoryBudgetBytes: 1000 });
    await use("a");
    clock.advance(1);
    await use("b");
    clock.advance(1);
    await use("c"); // 400 + 300 + 500 > 1000: a goes
    expect(loaded()).toEqual(["b", "c"]);
    clock.advance(1);
    await use("a"); // 300 + 500 + 400 > 1000: b (older than c) goes
    expect(loaded()).toEqual(["a", "c"]);
    expect(log).toEqual(["load a", "load b", "unload a", "load c", "unload b", "load a"]);
  });

  it("never evicts a model with a request in flight: the load is refused with 503 and Retry-After", async () => {
    const { router, signal, use, loaded, log } = setup({ a: 1, b: 1 }, { maxLoadedModels: 1 });
    const lease = await router.acquire("a", "chat", signal);
    const err = await router.acquire("b", "chat", signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err).toMatchObject({ status: 503, code: "models_busy", headers: { "retry-after": "1" } });
    expect(loaded()).toEqual(["a"]);
    lease.release();
    await use("b");
    expect(loaded()).toEqual(["b"]);
    // The refused load never reached the engine ("unload b" is the runner's cleanup after any failed load).
    expect(log).toEqual(["load a", "unload b", "unload a", "load b"]);
  });

  it("refuses a model larger than the whole budget", async () => {
    const { router, signal } = setup({ huge: 5000 }, { memoryBudgetBytes: 1000 });
    await expect(router.acquire("huge", "chat", signal)).rejects.toMatchObject({ status: 503, code: "memory_budget_exceeded" });
  });

  it("a second model requested while the first is still loading waits for it, then evicts it when idle", async () => {
    const { router, signal, loaded } = setup({ a: 1, b: 1 }, { maxLoadedModels: 1 });
    const [la, lb] = await Promise.allSettled([router.acquire("a", "chat", signal), router.acquire("b", "chat", signal)]);
    // a's request holds it, so b cannot take its place.
    expect(la.status).toBe("fulfilled");
    expect(lb).toMatchObject({ status: "rejected", reason: { code: "models_busy" } });
    (la as PromiseFulfilledResult<{ release(): void }>).value.release();
    (await router.acquire("b", "chat", signal)).release();
    expect(loaded()).toEqual(["b"]);
  });

  it("preloads listed models (aliases too) and reports the state in status()", async () => {
    const { router, signal, loaded, log } = setup({ a: 1, b: 1 }, { aliases: { fast: "b" } });
    await router.preload(["a", "fast", "nope"], signal);
    expect(loaded()).toEqual(["a", "b"]);
    expect(log).toEqual(["load a", "load b"]);
    expect(router.status().find((s) => s.descriptor.id === "fast")).toMatchObject({ aliasOf: "b", state: "loaded" });
  });

  it("resolves aliases; a model with the same id wins over an alias", async () => {
    const { router, signal, log } = setup({ a: 1, b: 1 }, { aliases: { chat: "a", b: "a" } });
    (await router.acquire("chat", "chat", signal)).release();
    (await router.acquire("b", "chat", signal)).release();
    expect(log).toEqual(["load a", "load b"]);
    expect(router.modelStatus("chat")).toMatchObject({ aliasOf: "a", descriptor: { id: "chat" } });
  });

  it("answers 503 with Retry-After for a model still downloading, and the reason once its pull failed", async () => {
    const { router, signal } = setup({});
    router.setPending("dl", { descriptor: testDescriptor({ id: "dl" }), state: "downloading", doneBytes: 250, totalBytes: 1000, bytesPerSecond: 50, error: null });
    const err = (await router.acquire("dl", "chat", signal).catch((e: unknown) => e)) as TabAgentError;
    expect(err).toMatchObject({ status: 503, code: "model_downloading", headers: { "retry-after": "15" } });
    expect(err.message).toMatch(/still downloading \(25% of 1000 bytes\)/);
    expect(router.status()).toEqual([expect.objectContaining({ state: "downloading", download: { doneBytes: 250, totalBytes: 1000, error: null } })]);
    router.setPending("dl", { descriptor: testDescriptor({ id: "dl" }), state: "download-failed", doneBytes: 0, totalBytes: 1000, bytesPerSecond: null, error: "gated" });
    await expect(router.acquire("dl", "chat", signal)).rejects.toMatchObject({ status: 503, code: "model_download_failed" });
  });
});
