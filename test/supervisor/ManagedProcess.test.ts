import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { AbortedError, ServiceUnavailableError } from "../../src/core/errors.js";
import { ProcessFailedError, ProcessStartError, ProcessStoppedError } from "../../src/supervisor/errors.js";
import { ManagedProcess, type ManagedProcessOptions } from "../../src/supervisor/ManagedProcess.js";
import { ProcessRegistry } from "../../src/supervisor/ProcessRegistry.js";
import { FakeClock } from "../helpers/FakeClock.js";
import { FakeSpawner } from "./FakeSpawner.js";

/** Lets promise chains and stream events run. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

function setup(overrides: Partial<ManagedProcessOptions> = {}) {
  const clock = new FakeClock();
  const spawner = new FakeSpawner(() => clock.now());
  const registry = new ProcessRegistry();
  const proc = new ManagedProcess({
    name: "llama-server",
    command: (port) => ({ file: "llama-server", args: ["--port", String(port)] }),
    logger: pino({ level: "silent" }),
    clock,
    spawn: spawner.spawn,
    findPort: spawner.findPort,
    healthCheck: spawner.healthCheck,
    startTimeoutMs: 10_000,
    stopGraceMs: 1_000,
    registry,
    ...overrides,
  });
  /** Moves the fake clock in small steps, letting async work run in between. */
  const advance = async (ms: number, step = 10) => {
    await settle();
    for (let t = 0; t < ms; t += step) {
      clock.advance(Math.min(step, ms - t));
      await settle(5);
    }
    await settle();
  };
  return { clock, spawner, registry, proc, advance };
}

/** Records how a promise settled without letting it go unhandled. */
function track<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: unknown) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

describe("ManagedProcess state machine", () => {
  it("shares one start between concurrent callers and polls health with backoff", async () => {
    const { spawner, proc, advance } = setup();
    spawner.onSpawn = () => undefined; // not healthy yet
    const a = track(proc.ensureReady());
    const b = track(proc.ensureReady());
    await advance(300);
    expect(proc.status.state).toBe("starting");
    expect(spawner.children).toHaveLength(1);
    spawner.last.healthy = true;
    await advance(500); // the interval has grown to at most 500 ms
    expect(a.value).toEqual({ address: spawner.last.port });
    expect(b.value).toEqual({ address: spawner.last.port });
    expect(spawner.children).toHaveLength(1);
    expect(proc.status).toMatchObject({ state: "ready", pid: spawner.last.pid, port: spawner.last.port, restarts: 0 });
    // once ready, callers get the port straight away
    await expect(proc.ensureReady()).resolves.toEqual({ address: spawner.last.port });
    expect(spawner.children).toHaveLength(1);
  });

  it("an aborted waiter stops waiting; the shared start goes on for the others", async () => {
    const { spawner, proc, advance } = setup();
    spawner.onSpawn = () => undefined;
    const aborter = new AbortController();
    const a = track(proc.ensureReady(aborter.signal));
    const b = track(proc.ensureReady());
    await advance(100);
    aborter.abort(new AbortedError("client went away"));
    await settle();
    expect(a.error).toBe(aborter.signal.reason);
    expect(b.settled).toBe(false);
    expect(spawner.last.signals).toEqual([]); // the start was not cancelled
    spawner.last.healthy = true;
    await advance(500);
    expect(b.value).toEqual({ address: spawner.last.port });
    expect(spawner.children).toHaveLength(1);
  });

  it("stop() during a start cancels it: waiters get engine_stopped, the child is killed, the next caller starts anew", async () => {
    const { spawner, proc, advance, registry } = setup();
    spawner.onSpawn = () => undefined;
    const waiter = track(proc.ensureReady());
    await advance(100);
    const first = spawner.last;
    expect(registry.size).toBe(1);
    await proc.stop();
    await settle();
    expect(waiter.error).toBeInstanceOf(ProcessStoppedError);
    expect((waiter.error as ProcessStoppedError).code).toBe("engine_stopped");
    expect(first.alive).toBe(false);
    expect(first.signals[0]).toBe("SIGTERM");
    expect(proc.status.state).toBe("stopped");
    expect(registry.size).toBe(0);

    spawner.onSpawn = (c) => (c.healthy = true);
    const ready = await proc.ensureReady();
    expect(ready).toEqual({ address: spawner.last.port });
    expect(spawner.children).toHaveLength(2);
  });

  it("a caller arriving during a stop waits for it, then starts the process again", async () => {
    const { spawner, proc, advance } = setup({ stopGraceMs: 1_000 });
    spawner.onSpawn = (c, i) => {
      c.healthy = true;
      if (i === 0) c.diesOn.delete("SIGTERM"); // the first one ignores SIGTERM: the stop takes the whole grace
    };
    const { address: firstPort } = await proc.ensureReady();
    const first = spawner.last;
    const stopped = track(proc.stop());
    await settle();
    expect(proc.status.state).toBe("stopping");
    const waiter = track(proc.ensureReady());
    await advance(990);
    expect(waiter.settled).toBe(false);
    expect(first.alive).toBe(true);
    expect(spawner.children).toHaveLength(1);
    await advance(20);
    expect(first.signals).toEqual(["SIGTERM", "SIGKILL", "SIGKILL"]); // TERM, KILL after the grace, KILL the rest of the group
    expect(stopped.settled).toBe(true);
    expect(spawner.children).toHaveLength(2);
    expect(waiter.value).toEqual({ address: spawner.last.port });
    expect(spawner.last.port).not.toBe(firstPort);
    expect(proc.status.state).toBe("ready");
  });

  it("stop() is idempotent and concurrent stops share one", async () => {
    const { spawner, proc } = setup();
    await proc.ensureReady();
    const [a, b] = [proc.stop(), proc.stop()];
    await Promise.all([a, b]);
    await proc.stop();
    expect(spawner.last.signals.filter((s) => s === "SIGTERM")).toHaveLength(1);
    expect(proc.status).toMatchObject({ state: "stopped", pid: null, port: null });
  });

  it("a child that exits while starting fails the start at once; its output goes to the log and status, not the error", async () => {
    const logged: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString("utf8")), done()) });
    const { spawner, proc, registry } = setup({ logger: pino({ level: "warn" }, sink) });
    spawner.onSpawn = (c) => {
      c.say("llama_model_load: error loading model: tensor 'blk.0' has wrong shape", "main: exiting due to model loading error");
      c.exit({ code: 1, signal: null });
    };
    const err = (await proc.ensureReady().catch((e: unknown) => e)) as ProcessStartError;
    expect(err).toBeInstanceOf(ProcessStartError);
    expect(err.status).toBe(503);
    expect(err.code).toBe("engine_start_failed");
    expect(err.message).toBe("The llama-server process failed to start: it exited with code 1 while starting; its last output is in the daemon log.");
    expect(err.message).not.toContain("wrong shape");
    expect(logged.join("")).toContain("tensor 'blk.0' has wrong shape"); // at error level, whatever the output level
    expect(err.lastLines).toEqual(["llama_model_load: error loading model: tensor 'blk.0' has wrong shape", "main: exiting due to model loading error"]);
    expect(spawner.last.signals).toContain("SIGKILL"); // whatever it left in its group is killed
    expect(proc.status.state).toBe("stopped"); // one failure: the next request tries again
    expect(proc.status.lastError).toContain("wrong shape");
    expect(registry.size).toBe(0);
  });

  it("a child that never becomes healthy is killed at the deadline", async () => {
    const { spawner, proc, advance } = setup({ startTimeoutMs: 2_000 });
    spawner.onSpawn = (c) => c.say("loading model ...");
    const waiter = track(proc.ensureReady());
    await advance(1_990);
    expect(waiter.settled).toBe(false);
    await advance(20);
    expect(waiter.error).toBeInstanceOf(ProcessStartError);
    expect((waiter.error as Error).message).toMatch(/did not become healthy within 2000 ms; its last output is in the daemon log\.$/);
    expect(proc.status.lastError).toMatch(/did not become healthy within 2000 ms\. Last output:\nloading model \.\.\./);
    expect(spawner.last.alive).toBe(false);
    expect(spawner.last.signals[0]).toBe("SIGTERM");
  });

  it("retries on another port when the child reports its port taken", async () => {
    const { spawner, proc } = setup();
    spawner.onSpawn = (c, i) => {
      if (i === 0) {
        c.say(`error: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: ${c.port}`);
        c.exit({ code: 1, signal: null });
      } else c.healthy = true;
    };
    const { address: port } = await proc.ensureReady();
    expect(spawner.children).toHaveLength(2);
    expect(port).toBe(spawner.children[1]!.port);
    expect(port).not.toBe(spawner.children[0]!.port);
    expect(proc.status.lastError).toBeNull(); // not counted as a failure
  });

  it("restarts a crashed child in the background with exponential backoff; callers meanwhile wait for it", async () => {
    const { spawner, proc, clock, advance } = setup({
      restart: { maxRestarts: 5, windowMs: 60_000, backoffInitialMs: 500, backoffMaxMs: 3_000, cooldownMs: 60_000 },
    });
    // 0: healthy; 1..3: die while starting; 4: healthy again
    spawner.onSpawn = (c, i) => {
      if (i >= 1 && i <= 3) {
        c.say(`attempt ${i} failed`);
        c.exit({ code: 2, signal: null });
      } else c.healthy = true;
    };
    await proc.ensureReady();
    spawner.last.say("about to crash");
    await settle();
    const crashAt = clock.now();
    spawner.last.exit({ code: null, signal: "SIGSEGV" });
    await settle();
    expect(proc.status.state).toBe("starting");
    expect(proc.status.lastError).toMatch(/was killed by SIGSEGV unexpectedly\. Last output:\n[^]*about to crash/);
    const waiter = track(proc.ensureReady());
    await advance(500 + 1_000 + 2_000 + 3_000 + 100);
    // delays: 500, then doubling (1000, 2000) capped at backoffMaxMs (3000)
    expect(spawner.children.slice(1).map((c) => c.spawnedAt - crashAt)).toEqual([500, 1_500, 3_500, 6_500]);
    expect(waiter.value).toEqual({ address: spawner.last.port });
    expect(proc.status).toMatchObject({ state: "ready", restarts: 4 });
  });

  it("confirmGone waits for the exit a caller saw coming (closed port), so the next caller waits for the restart", async () => {
    const { spawner, proc, advance } = setup();
    spawner.onSpawn = (c) => {
      c.healthy = true;
    };
    const { address: port } = await proc.ensureReady();
    const first = spawner.last;
    const gone = track(proc.confirmGone(port, 2_000));
    await settle();
    expect(gone.settled).toBe(false); // still ready: the exit has not been seen yet
    first.exit({ code: null, signal: "SIGKILL" });
    await settle();
    expect(gone.value).toBe(true);
    expect(proc.status.state).toBe("starting");
    const next = track(proc.ensureReady());
    await advance(600);
    expect(next.value).toEqual({ address: spawner.last.port });
    expect(spawner.last).not.toBe(first);
    // a live child that merely refused once is not declared gone: the wait ends at its deadline
    const alive = track(proc.confirmGone(spawner.last.port, 2_000));
    await advance(2_100);
    expect(alive.value).toBe(false);
    // a port that is no longer current needs no wait
    expect(await proc.confirmGone(port)).toBe(true);
  });

  it("a ready child that stops answering its health check is replaced after livenessFailures checks; one success resets the count", async () => {
    const { spawner, proc, advance } = setup({ livenessIntervalMs: 1_000, livenessFailures: 3 });
    const { address: port } = await proc.ensureReady();
    const first = spawner.last;
    first.healthy = false; // alive, but wedged
    await advance(2_000);
    first.healthy = true; // two failures, then it recovers: the count starts over
    await advance(1_000);
    first.healthy = false;
    await advance(2_000);
    expect(first.alive).toBe(true); // only two failures in a row so far
    await advance(1_000);
    expect(first.alive).toBe(false);
    expect(proc.status.lastError).toMatch(/replaced: its health check failed 3 times in a row/);
    await advance(600); // the restart's backoff
    expect(proc.status.state).toBe("ready");
    expect(spawner.last).not.toBe(first);
    expect((await proc.ensureReady()).address).not.toBe(port);
  });

  it("liveness checks stop with the child: a stopped process runs none", async () => {
    const checks: number[] = [];
    const { proc, spawner, advance } = setup({ livenessIntervalMs: 1_000 });
    const probe = spawner.healthCheck;
    (proc as unknown as { healthCheck: (port: number) => Promise<boolean> }).healthCheck = async (port) => {
      checks.push(port);
      return probe(port);
    };
    await proc.ensureReady();
    await advance(3_500);
    const whileReady = checks.length;
    expect(whileReady).toBeGreaterThanOrEqual(3);
    await proc.stop();
    await advance(5_000);
    expect(checks.length).toBe(whileReady);
  });

  it("too many failures: failed with a cooldown (503 naming the reason), then a new try", async () => {
    const { spawner, proc, clock, advance } = setup({
      restart: { maxRestarts: 3, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 10_000, cooldownMs: 30_000 },
    });
    let broken = false;
    spawner.onSpawn = (c) => {
      if (!broken) c.healthy = true;
      else {
        c.say("CUDA error: out of memory");
        c.exit({ code: 1, signal: null });
      }
    };
    await proc.ensureReady();
    broken = true;
    spawner.last.exit({ code: 134, signal: null }); // failure 1, then 3 restarts fail: 4 > 3
    await settle();
    const waiter = track(proc.ensureReady());
    await advance(100 + 200 + 400 + 50);
    expect(spawner.children).toHaveLength(4);
    expect(proc.status.state).toBe("failed");
    expect(proc.status.restarts).toBe(3);
    expect(waiter.error).toBeInstanceOf(ProcessFailedError);

    const failedAt = clock.now();
    const err = (await proc.ensureReady().catch((e: unknown) => e)) as ProcessFailedError;
    expect(err).toBeInstanceOf(ProcessFailedError);
    expect(err.status).toBe(503);
    expect(err.code).toBe("engine_failed");
    expect(err.message).toMatch(/Last failure: The llama-server process failed to start: it exited with code 1 while starting; its last output is in the daemon log\.$/);
    expect(err.message).not.toContain("CUDA error"); // clients get what failed; the output stays with the operator
    expect(proc.status.lastError).toContain("CUDA error: out of memory");
    expect(Number(err.headers["retry-after"])).toBeGreaterThan(29);
    expect(proc.status.retryAt).toBeGreaterThan(failedAt + 29_000);
    expect(spawner.children).toHaveLength(4); // refusing costs no spawn

    // still cooling down a little later
    await advance(20_000, 1_000);
    await expect(proc.ensureReady()).rejects.toBeInstanceOf(ProcessFailedError);

    // after the cooldown the next request tries again
    await advance(10_000, 1_000);
    broken = false;
    const ready = await proc.ensureReady();
    expect(ready).toEqual({ address: spawner.last.port });
    expect(spawner.children).toHaveLength(5);
    expect(proc.status.state).toBe("ready");
  });

  it("after the cooldown a single failed try pauses it again (no new burst of restarts)", async () => {
    const { spawner, proc, advance } = setup({
      restart: { maxRestarts: 1, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 1_000, cooldownMs: 5_000 },
    });
    spawner.onSpawn = (c) => {
      c.say("bad model");
      c.exit({ code: 1, signal: null });
    };
    await expect(proc.ensureReady()).rejects.toBeInstanceOf(ProcessStartError); // failure 1: stopped
    expect(proc.status.state).toBe("stopped");
    await expect(proc.ensureReady()).rejects.toBeInstanceOf(ProcessStartError); // failure 2 > 1: failed
    expect(proc.status.state).toBe("failed");
    await expect(proc.ensureReady()).rejects.toBeInstanceOf(ProcessFailedError);
    await advance(5_000, 500);
    await expect(proc.ensureReady()).rejects.toBeInstanceOf(ProcessStartError); // the probe fails...
    expect(proc.status.state).toBe("failed"); // ...and it is paused again at once
    expect(spawner.children).toHaveLength(3);
  });

  it("stop() cancels a pending restart", async () => {
    const { spawner, proc, advance } = setup();
    await proc.ensureReady();
    spawner.last.exit({ code: 1, signal: null });
    await settle();
    expect(proc.status.state).toBe("starting");
    const waiter = track(proc.ensureReady());
    await proc.stop();
    await settle();
    expect(waiter.error).toBeInstanceOf(ProcessStoppedError);
    await advance(2_000, 100);
    expect(spawner.children).toHaveLength(1);
    expect(proc.status.state).toBe("stopped");
  });

  it("close() stops the child and refuses new work", async () => {
    const { spawner, proc } = setup();
    await proc.ensureReady();
    await proc[Symbol.asyncDispose]();
    expect(spawner.alive).toHaveLength(0);
    const err = await proc.ensureReady().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).code).toBe("shutting_down");
  });

  it("keeps the child's output in a bounded ring buffer, lines cut at the cap", async () => {
    const { spawner, proc } = setup({ ringBufferLines: 5, maxLineBytes: 16 });
    await proc.ensureReady();
    const child = spawner.last;
    for (let i = 1; i <= 8; i++) child.say(`line ${i}`);
    child.stderr.write("x".repeat(40) + "\n");
    child.stderr.write(Buffer.from([0x66, 0xff, 0xfe, 0x0a]));
    await settle();
    expect(proc.lastLines(10)).toEqual(["line 6", "line 7", "line 8", "x".repeat(16) + " …[truncated]", "f\uFFFD\uFFFD"]);
    expect(proc.lastLines(2)).toHaveLength(2);
  });

  it("logs every output line as debug, tagged with the process name, pid and stream", async () => {
    const records: Record<string, unknown>[] = [];
    const logger = pino({ level: "debug" }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
    const { spawner, proc } = setup({
      logger,
      command: (port) => ({ file: "llama-server", args: ["--port", String(port), "--api-key", "sk-secret"] }),
    });
    await proc.ensureReady();
    expect(records).toContainEqual(expect.objectContaining({ msg: "starting", args: ["--port", String(spawner.last.port), "--api-key", "[redacted]"] }));
    expect(JSON.stringify(records)).not.toContain("sk-secret");
    spawner.last.say("srv  load_model: loading model");
    spawner.last.stdout.write("hello on stdout\n");
    await settle();
    expect(records).toContainEqual(
      expect.objectContaining({ level: 20, proc: "llama-server", pid: spawner.last.pid, stream: "stderr", msg: "srv  load_model: loading model" }),
    );
    expect(records).toContainEqual(expect.objectContaining({ level: 20, stream: "stdout", msg: "hello on stdout" }));
  });

  it("addresses other than ports: a fresh one per start, released once its child has exited, described in status", async () => {
    const clock = new FakeClock();
    const spawner = new FakeSpawner(() => clock.now());
    const live = new Set<number>();
    const released: number[] = [];
    let next = 1;
    const proc = new ManagedProcess<{ id: number; port: number }>({
      name: "child",
      command: (a) => ({ file: "child", args: ["--port", String(a.port)] }),
      logger: pino({ level: "silent" }),
      clock,
      spawn: spawner.spawn,
      healthCheck: (a) => spawner.healthCheck(a.port),
      addresses: {
        allocate: async () => {
          const id = next++;
          live.add(id);
          return { id, port: 50_000 + id };
        },
        release: async (a) => {
          live.delete(a.id);
          released.push(a.id);
        },
        describe: (a) => `endpoint-${a.id}`,
      },
    });
    const { address: first } = await proc.ensureReady();
    expect(proc.status).toMatchObject({ state: "ready", port: null, address: "endpoint-1" });
    expect(live).toEqual(new Set([1]));
    spawner.last.exit({ code: null, signal: "SIGKILL" }); // crash: the restart gets a new address
    await settle();
    expect(await proc.confirmGone(first)).toBe(true);
    await settle();
    expect(released).toEqual([1]);
    clock.advance(600); // the restart's backoff
    await settle();
    const { address: second } = await proc.ensureReady();
    expect(second.id).toBe(2);
    await proc.stop(); // resolves once the address is released
    expect(released).toEqual([1, 2]);
    expect(live.size).toBe(0);
    expect(proc.status).toMatchObject({ state: "stopped", port: null, address: null });
  });

  it("a health check is required with addresses", () => {
    expect(
      () =>
        new ManagedProcess<string>({
          name: "child",
          command: () => ({ file: "child", args: [] }),
          logger: pino({ level: "silent" }),
          addresses: { allocate: async () => "a", release: async () => undefined, describe: (a) => a },
        }),
    ).toThrow(/health check is required/);
  });
});
