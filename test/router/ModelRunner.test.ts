import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { ModelLoadError, QueueFullError } from "../../src/core/errors.js";
import type { ModelDescriptor } from "../../src/core/types.js";
import { ModelRunner } from "../../src/router/ModelRunner.js";
import { FakeClock } from "../helpers/FakeClock.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

const descriptor: ModelDescriptor = testDescriptor();

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

class FakeBackend implements Backend {
  readonly descriptor = descriptor;
  loads = 0;
  unloads = 0;
  loadGate: ReturnType<typeof deferred> | null = null;
  unloadGate: ReturnType<typeof deferred> | null = null;
  failNext: Error | null = null;
  /** Starts and ends of loads and unloads, in order. */
  readonly events: string[] = [];
  constructor(readonly parallel = 2) {}
  async load(): Promise<void> {
    this.loads++;
    this.events.push(`load ${this.loads} start`);
    if (this.loadGate) await this.loadGate.promise;
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
  }
  async unload(): Promise<void> {
    this.unloads++;
    const n = this.unloads;
    this.events.push(`unload ${n} start`);
    if (this.unloadGate) await this.unloadGate.promise;
    this.events.push(`unload ${n} done`);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function setup(opts: { ttl?: number; queue?: number; parallel?: number } = {}) {
  const clock = new FakeClock();
  const backend = new FakeBackend(opts.parallel ?? 2);
  const runner = new ModelRunner(backend, { idleTtlMs: opts.ttl ?? 1000, queueSize: opts.queue ?? 2, clock, logger: pino({ level: "silent" }) });
  return { clock, backend, runner, signal: new AbortController().signal };
}

describe("ModelRunner", () => {
  it("shares one load between concurrent first requests", async () => {
    const { backend, runner, signal } = setup();
    backend.loadGate = deferred();
    const a = runner.acquire(signal);
    const b = runner.acquire(signal);
    await tick();
    expect(runner.status.state).toBe("loading");
    backend.loadGate.resolve(undefined);
    const [la, lb] = await Promise.all([a, b]);
    expect(backend.loads).toBe(1);
    la.release();
    lb.release();
  });

  it("unloads after the idle TTL, never while a request runs", async () => {
    const { clock, backend, runner, signal } = setup({ ttl: 1000 });
    const lease = await runner.acquire(signal);
    clock.advance(5000);
    expect(backend.unloads).toBe(0); // busy: no timer armed
    lease.release();
    clock.advance(999);
    expect(backend.unloads).toBe(0);
    clock.advance(1);
    await tick();
    expect(backend.unloads).toBe(1);
    expect(runner.status.state).toBe("unloaded");
  });

  it("a new request resets the idle timer", async () => {
    const { clock, backend, runner, signal } = setup({ ttl: 1000 });
    (await runner.acquire(signal)).release();
    clock.advance(900);
    const lease = await runner.acquire(signal);
    clock.advance(900);
    lease.release();
    clock.advance(900);
    expect(backend.unloads).toBe(0);
    clock.advance(100);
    await tick();
    expect(backend.unloads).toBe(1);
  });

  it("ttl 0 never unloads", async () => {
    const { clock, backend, runner, signal } = setup({ ttl: 0 });
    (await runner.acquire(signal)).release();
    clock.advance(1e9);
    expect(clock.pending).toBe(0);
    expect(backend.unloads).toBe(0);
  });

  it("a request arriving during an idle unload waits for it and loads again", async () => {
    const { clock, backend, runner, signal } = setup({ ttl: 10 });
    (await runner.acquire(signal)).release();
    backend.unloadGate = deferred();
    clock.advance(10);
    expect(runner.status.state).toBe("unloading");
    const pending = runner.acquire(signal);
    await tick();
    expect(backend.loads).toBe(1);
    backend.unloadGate.resolve(undefined);
    const lease = await pending;
    expect(backend.loads).toBe(2);
    expect(runner.status.state).toBe("loaded");
    lease.release();
  });

  it("limits concurrency and queues FIFO; past the queue it answers 429 with Retry-After", async () => {
    const { runner, signal } = setup({ parallel: 1, queue: 1 });
    const first = await runner.acquire(signal);
    const order: string[] = [];
    const second = runner.acquire(signal).then((l) => (order.push("second"), l));
    await tick();
    const err = await runner.acquire(signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueFullError);
    expect((err as QueueFullError).headers["retry-after"]).toMatch(/^\d+$/);
    expect(order).toEqual([]);
    first.release();
    (await second).release();
    expect(order).toEqual(["second"]);
  });

  it("an aborted waiter leaves the queue", async () => {
    const { runner, signal } = setup({ parallel: 1, queue: 1 });
    const first = await runner.acquire(signal);
    const ac = new AbortController();
    const waiting = runner.acquire(ac.signal);
    ac.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    expect(runner.status.queued).toBe(0);
    const third = runner.acquire(signal);
    first.release();
    (await third).release();
  });

  it("a failed load rejects every waiter and the next request retries", async () => {
    const { backend, runner, signal } = setup();
    backend.loadGate = deferred();
    backend.failNext = new Error("bad magic");
    const a = runner.acquire(signal);
    const b = runner.acquire(signal);
    backend.loadGate.resolve(undefined);
    await expect(a).rejects.toBeInstanceOf(ModelLoadError);
    await expect(b).rejects.toThrow(/bad magic/);
    backend.loadGate = null;
    const lease = await runner.acquire(signal);
    expect(backend.loads).toBe(2);
    lease.release();
    expect(runner.status.running).toBe(0);
  });

  it("after a failed load, the next load waits until the engine's cleanup unload has finished", async () => {
    const { backend, runner, signal } = setup();
    backend.failNext = new Error("out of memory");
    backend.unloadGate = deferred();
    await expect(runner.acquire(signal)).rejects.toBeInstanceOf(ModelLoadError);
    expect(runner.status.state).toBe("unloading");
    const second = runner.acquire(signal);
    await tick();
    await tick();
    expect(backend.loads).toBe(1); // load #2 has not started: unload #1 is still running
    backend.unloadGate.resolve(undefined);
    const lease = await second;
    expect(backend.events).toEqual(["load 1 start", "unload 1 start", "unload 1 done", "load 2 start"]);
    expect(runner.status.state).toBe("loaded");
    lease.release();
  });

  it("requests that waited for a failed load fail at once, without waiting for the slow cleanup", async () => {
    const { backend, runner, signal } = setup();
    backend.loadGate = deferred();
    backend.unloadGate = deferred();
    backend.failNext = new Error("bad magic");
    const a = runner.acquire(signal);
    const b = runner.acquire(signal);
    backend.loadGate.resolve(undefined);
    await expect(a).rejects.toThrow(/bad magic/);
    await expect(b).rejects.toThrow(/bad magic/);
    expect(backend.events).toEqual(["load 1 start", "unload 1 start"]);
    expect(runner.status).toEqual({ state: "unloading", running: 0, queued: 0, runtime: null });
    backend.unloadGate.resolve(undefined);
  });

  it("close waits for the cleanup unload of a failed load", async () => {
    const { backend, runner, signal } = setup();
    backend.failNext = new Error("bad magic");
    backend.unloadGate = deferred();
    await expect(runner.acquire(signal)).rejects.toThrow(/bad magic/);
    let closed = false;
    const closing = runner.close().then(() => (closed = true));
    await tick();
    expect(closed).toBe(false);
    backend.unloadGate.resolve(undefined);
    await closing;
    expect(backend.events).toEqual(["load 1 start", "unload 1 start", "unload 1 done"]);
    expect(runner.status.state).toBe("unloaded");
  });

  it("a cleanup unload that throws synchronously still lets the next request load", async () => {
    const { backend, runner, signal } = setup();
    backend.failNext = new Error("bad magic");
    backend.unload = () => {
      throw new Error("unload exploded");
    };
    await expect(runner.acquire(signal)).rejects.toThrow(/bad magic/);
    const lease = await runner.acquire(signal);
    expect(backend.loads).toBe(2);
    lease.release();
  });

  it("releasing a lease twice frees the slot once", async () => {
    const { runner, signal } = setup({ parallel: 1, queue: 0 });
    const lease = await runner.acquire(signal);
    lease.release();
    lease.release();
    const again = await runner.acquire(signal);
    await expect(runner.acquire(signal)).rejects.toBeInstanceOf(QueueFullError);
    again.release();
  });

  it("close unloads and refuses new work", async () => {
    const { backend, runner, signal } = setup();
    (await runner.acquire(signal)).release();
    await runner.close();
    expect(backend.unloads).toBe(1);
    await expect(runner.acquire(signal)).rejects.toThrow(/shutting down/);
  });
});
