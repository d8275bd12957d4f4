import { describe, expect, it } from "vitest";
import { AbortedError } from "../../src/core/errors.js";
import { QueueOverflow, SlotQueue } from "../../src/router/SlotQueue.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("SlotQueue", () => {
  it("grants up to `capacity` slots at once without waiting", async () => {
    const q = new SlotQueue(2, 5);
    await q.acquire();
    await q.acquire();
    expect(q.running).toBe(2);
    expect(q.queued).toBe(0);
    void q.acquire();
    expect(q.queued).toBe(1);
  });

  it("hands released slots to waiters in FIFO order", async () => {
    const q = new SlotQueue(1, 5);
    const first = await q.acquire();
    const order: string[] = [];
    const waiters = ["a", "b", "c"].map((name) => q.acquire().then((release) => (order.push(name), release)));
    await tick();
    expect(order).toEqual([]);
    first();
    const a = await waiters[0]!;
    expect(order).toEqual(["a"]);
    a();
    const b = await waiters[1]!;
    b();
    (await waiters[2]!)();
    expect(order).toEqual(["a", "b", "c"]);
    expect(q.running).toBe(0);
    expect(q.queued).toBe(0);
  });

  it("passes the slot straight to the next waiter: running never drops between them", async () => {
    const q = new SlotQueue(1, 1);
    const first = await q.acquire();
    const next = q.acquire();
    first();
    expect(q.running).toBe(1);
    expect(q.queued).toBe(0);
    (await next)();
    expect(q.running).toBe(0);
  });

  it("refuses past the queue size with QueueOverflow, and a queue of 0 never waits", async () => {
    const q = new SlotQueue(1, 2);
    await q.acquire();
    void q.acquire();
    void q.acquire();
    await expect(q.acquire()).rejects.toBeInstanceOf(QueueOverflow);
    expect(q.queued).toBe(2);

    const none = new SlotQueue(1, 0);
    await none.acquire();
    await expect(none.acquire()).rejects.toBeInstanceOf(QueueOverflow);
  });

  it("a newcomer does not overtake waiters when a slot frees up", async () => {
    const q = new SlotQueue(1, 2);
    const first = await q.acquire();
    const order: string[] = [];
    const waiting = q.acquire().then((r) => (order.push("waiter"), r));
    first();
    const late = q.acquire().then((r) => (order.push("late"), r));
    (await waiting)();
    (await late)();
    expect(order).toEqual(["waiter", "late"]);
  });

  it("an aborted waiter leaves the queue at once with the signal's reason, and is skipped", async () => {
    const q = new SlotQueue(1, 2);
    const first = await q.acquire();
    const ac = new AbortController();
    const gone = q.acquire(ac.signal);
    const stays = q.acquire();
    expect(q.queued).toBe(2);
    ac.abort(new Error("client left"));
    await expect(gone).rejects.toThrow("client left");
    expect(q.queued).toBe(1);
    first();
    (await stays)();
    expect(q.running).toBe(0);
  });

  it("an abort without an Error reason rejects with AbortedError; an already aborted signal never queues", async () => {
    const q = new SlotQueue(1, 2);
    await q.acquire();
    const ac = new AbortController();
    const waiting = q.acquire(ac.signal);
    ac.abort("just a string");
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    await expect(q.acquire(AbortSignal.abort("gone"))).rejects.toBeInstanceOf(AbortedError);
    expect(q.queued).toBe(0);
    const free = new SlotQueue(1, 0);
    await expect(free.acquire(AbortSignal.abort("gone"))).rejects.toBeInstanceOf(AbortedError);
    expect(free.running).toBe(0);
  });

  it("an abort after the slot was granted changes nothing", async () => {
    const q = new SlotQueue(1, 1);
    const first = await q.acquire();
    const ac = new AbortController();
    const next = q.acquire(ac.signal);
    first();
    const release = await next;
    ac.abort();
    expect(q.running).toBe(1);
    release();
    expect(q.running).toBe(0);
  });

  it("releasing twice frees one slot only", async () => {
    const q = new SlotQueue(1, 1);
    const release = await q.acquire();
    const next = q.acquire();
    release();
    release();
    expect(q.running).toBe(1);
    (await next)();
    expect(q.running).toBe(0);
  });
});
