import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import type { ModelDescriptor } from "../../src/core/types.js";
import { ModelRegistry } from "../../src/registry/ModelRegistry.js";
import type { Lease } from "../../src/router/ModelRunner.js";
import { ModelRouter, type ModelRouterOptions } from "../../src/router/ModelRouter.js";
import { FakeClock } from "../helpers/FakeClock.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Loads started while `gate` is set wait for it. */
interface LoadControl {
  gate: ReturnType<typeof deferred> | null;
}

class GatedBackend implements Backend {
  constructor(
    readonly descriptor: ModelDescriptor,
    readonly parallel: number,
    private readonly control: LoadControl,
  ) {}
  async load(): Promise<void> {
    const gate = this.control.gate;
    if (gate) await gate.promise;
  }
  async unload(): Promise<void> {}
}

const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function setup(options: Partial<ModelRouterOptions> & { parallel?: number } = {}) {
  const clock = new FakeClock();
  const backends = new Map<string, GatedBackend>();
  const control: LoadControl = { gate: null };
  const router = new ModelRouter({
    registry: new ModelRegistry(["a", "b"].map((id) => testDescriptor({ id }))),
    clock,
    logger: pino({ level: "silent" }),
    idleTtlMs: 0,
    queueSize: 2,
    backends: {
      "node-llama-cpp": (d) => {
        const b = new GatedBackend(d, options.parallel ?? 1, control);
        backends.set(d.id, b);
        return b;
      },
    },
    ...options,
  });
  const signal = new AbortController().signal;
  const refusal = (id: string, s = signal) =>
    router.acquire(id, "chat", s).then(
      (l) => (l.release(), null),
      (e: unknown) => e,
    );
  return { clock, router, backends, control, signal, refusal };
}

describe("ModelRouter admission", () => {
  it("queues past the model's slots, then answers 429 queue_full with Retry-After from the queue depth", async () => {
    const { router, signal, refusal } = setup({ parallel: 1, queueSize: 2 });
    const running = await router.acquire("a", "chat", signal);
    const queued = [router.acquire("a", "chat", signal), router.acquire("a", "chat", signal)];
    await tick();
    expect(router.modelStatus("a")).toMatchObject({ state: "loaded", running: 1, queued: 2 });
    expect(await refusal("a")).toMatchObject({ status: 429, code: "queue_full", headers: { "retry-after": "2" } });
    running.release();
    for (const q of queued) (await q).release();
    expect(router.modelStatus("a")).toMatchObject({ running: 0, queued: 0 });
  });

  it("Retry-After for a full queue shrinks with the model's parallel slots", async () => {
    const { router, signal, refusal } = setup({ parallel: 2, queueSize: 3 });
    const leases = await Promise.all([router.acquire("a", "chat", signal), router.acquire("a", "chat", signal)]);
    const queued = [1, 2, 3].map(() => router.acquire("a", "chat", signal));
    await tick();
    expect(await refusal("a")).toMatchObject({ code: "queue_full", headers: { "retry-after": "2" } }); // ceil(3 / 2)
    for (const l of leases) l.release();
    for (const q of queued) (await q).release();
  });

  it("a full queue while the first load runs answers 503 model_loading, Retry-After as long again as it has taken", async () => {
    const { clock, router, control, signal, refusal } = setup({ parallel: 1, queueSize: 1 });
    const gate = (control.gate = deferred());
    const first = router.acquire("a", "chat", signal);
    const second = router.acquire("a", "chat", signal);
    await tick();
    clock.advance(3000);
    expect(router.modelStatus("a")).toMatchObject({ state: "loading", queued: 1 });
    expect(await refusal("a")).toMatchObject({ status: 503, code: "model_loading", headers: { "retry-after": "3" } });
    gate.resolve();
    (await first).release();
    (await second).release();
  });

  it("the daemon's in-flight cap counts every model's running and queued requests: 429 server_busy, Retry-After 1", async () => {
    const { router, signal, refusal } = setup({ maxInflight: 2, queueSize: 5 });
    const a = await router.acquire("a", "chat", signal);
    const b = await router.acquire("b", "chat", signal);
    expect(await refusal("a")).toMatchObject({ status: 429, code: "server_busy", headers: { "retry-after": "1" } });
    expect(await refusal("b")).toMatchObject({ code: "server_busy" });
    a.release();
    expect(await refusal("a")).toBeNull();
    b.release();
  });

  it("over the in-flight cap while the model loads: 503 model_loading, Retry-After the rest of the last load", async () => {
    const { clock, router, control, signal, refusal } = setup({ maxInflight: 1, idleTtlMs: 1000 });
    const gate = (control.gate = deferred());
    const first = router.acquire("a", "chat", signal);
    await tick();
    clock.advance(10_000);
    gate.resolve();
    (await first).release(); // the load took 10 s
    clock.advance(1000); // idle TTL: unloaded
    await tick();
    expect(router.modelStatus("a")?.state).toBe("unloaded");
    const again = (control.gate = deferred());
    const reload = router.acquire("a", "chat", signal);
    await tick();
    clock.advance(4000);
    expect(await refusal("a")).toMatchObject({ status: 503, code: "model_loading", headers: { "retry-after": "6" } });
    // Another model is simply too much work: it is not the one loading.
    expect(await refusal("b")).toMatchObject({ status: 429, code: "server_busy" });
    again.resolve();
    (await reload).release();
  });

  it("a queued request whose client leaves drops out of the queue and gives back its in-flight place", async () => {
    const { router, signal, refusal } = setup({ parallel: 1, queueSize: 1, maxInflight: 2 });
    const running = await router.acquire("a", "chat", signal);
    const ac = new AbortController();
    const leaving = router.acquire("a", "chat", ac.signal);
    await tick();
    expect(router.modelStatus("a")).toMatchObject({ running: 1, queued: 1 });
    ac.abort(new Error("client closed the connection"));
    await expect(leaving).rejects.toThrow("client closed the connection");
    expect(router.modelStatus("a")).toMatchObject({ running: 1, queued: 0 });
    // Both the model's queue place and the daemon's in-flight place are free again.
    const next = router.acquire("a", "chat", signal);
    await tick();
    expect(router.modelStatus("a")).toMatchObject({ queued: 1 });
    expect(await refusal("b")).toMatchObject({ code: "server_busy" });
    running.release();
    (await next).release();
  });

  it("refusals of the catalog (unknown model, wrong endpoint) never take an in-flight place", async () => {
    const { router, signal } = setup({ maxInflight: 1 });
    await expect(router.acquire("nope", "chat", signal)).rejects.toMatchObject({ status: 404 });
    await expect(router.acquire("a", "embeddings", signal)).rejects.toMatchObject({ code: "model_task_mismatch" });
    (await router.acquire("a", "chat", signal)).release();
  });

  it("after close, requests answer 503 shutting_down and nothing is loaded", async () => {
    const { router, backends, signal } = setup();
    await router.close();
    await expect(router.acquire("a", "chat", signal)).rejects.toMatchObject({ status: 503, code: "shutting_down" });
    expect(backends.size).toBe(0);
  });

  it("a lease released twice frees one in-flight place", async () => {
    const { router, signal, refusal } = setup({ maxInflight: 2, parallel: 2 });
    const lease: Lease = await router.acquire("a", "chat", signal);
    const other = await router.acquire("a", "chat", signal);
    lease.release();
    lease.release();
    const third = await router.acquire("a", "chat", signal);
    expect(await refusal("a")).toMatchObject({ code: "server_busy" });
    other.release();
    third.release();
  });
});
