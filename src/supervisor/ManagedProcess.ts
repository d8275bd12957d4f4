import type { Logger } from "pino";
import { abortable, abortReason } from "../core/abortable.js";
import { type Clock, systemClock } from "../core/Clock.js";
import { ServiceUnavailableError } from "../core/errors.js";
import { clockSleep } from "./clockSleep.js";
import { createExecaSpawner } from "./createExecaSpawner.js";
import { describeExit, errorCode, ProcessFailedError, ProcessStartError, ProcessStoppedError, withOutput } from "./errors.js";
import { findFreePort } from "./findFreePort.js";
import { httpHealthCheck } from "./httpHealthCheck.js";
import { LineSplitter } from "./LineSplitter.js";
import type { ProcessRegistry } from "./ProcessRegistry.js";
import { RingBuffer } from "./RingBuffer.js";
import type { ChildHandle, CommandSpec, ExitInfo, Spawner } from "./Spawner.js";

type ProcessState = "stopped" | "starting" | "ready" | "stopping" | "failed";

export interface RestartPolicy {
  /** Failures (crashes and failed starts) tolerated within `windowMs`; one more and the process is `failed`. Default 5. */
  maxRestarts: number;
  /** The window in which failures are counted. Default 60 000. */
  windowMs: number;
  /** Delay before the first automatic restart; doubles with each failure in the window. Default 500. */
  backoffInitialMs: number;
  /** Upper bound of the restart delay. Default 30 000. */
  backoffMaxMs: number;
  /** How long a `failed` process refuses requests (503) before the next request may try again. Default 60 000. */
  cooldownMs: number;
}

/**
 * Where each start of a child listens, when that is not a free TCP port on 127.0.0.1 (the default): a Unix socket
 * in a private directory, say, with a key that only this start knows.
 */
export interface ListenAddresses<A> {
  /** A fresh address for one start; called before every spawn. */
  allocate(): Promise<A>;
  /** Called once the child that listened on `address` has exited (or could not be spawned). Must not reject. */
  release(address: A): Promise<void>;
  /** How the address appears in status and logs; never a secret. */
  describe(address: A): string;
  /** The TCP port in the address, if there is one (status `port`). Default: none. */
  port?(address: A): number | null;
}

export interface ManagedProcessOptions<A = number> {
  /** For logs and error messages ("llama-server", "bitnet", "python-sidecar"). */
  name: string;
  /** What to run, given the address the child must listen on (a 127.0.0.1 port by default). Called for every start. */
  command: (address: A) => CommandSpec;
  /**
   * Whether the child serves yet. Default: `GET http://127.0.0.1:${port}/health` answers 200 (required with
   * `addresses`). Throwing counts as "no".
   */
  healthCheck?: (address: A, signal: AbortSignal) => Promise<boolean>;
  /** Deadline for one health check. Default 2 000. */
  healthCheckTimeoutMs?: number;
  /** Deadline from spawn to healthy; past it the child is killed and the start fails. Default 60 000. */
  startTimeoutMs?: number;
  /** First interval between health checks while starting; doubles up to `healthIntervalMaxMs`. Default 50. */
  healthIntervalMs?: number;
  /** Default 500. */
  healthIntervalMaxMs?: number;
  /**
   * While ready, the health check runs this often; `livenessFailures` failures in a row mean the child is alive but
   * wedged (it answers nothing), and it is replaced like a crashed one. Default 15 000; 0 turns it off.
   */
  livenessIntervalMs?: number;
  /** Default 3. */
  livenessFailures?: number;
  /** Time between SIGTERM to the process group and SIGKILL. Default 5 000. */
  stopGraceMs?: number;
  /** Automatic restarts after a crash; see RestartPolicy for the defaults. */
  restart?: Partial<RestartPolicy>;
  /** New ports tried when the child reports that its port is taken. Default 3. */
  portRetries?: number;
  /** Output that means "port in use". Default matches EADDRINUSE, "address already in use", "couldn't bind". */
  portInUsePattern?: RegExp;
  logger: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: createExecaSpawner() (execa, detached process group, setpriv --pdeathsig KILL where available). */
  spawn?: Spawner;
  /** Default: findFreePort("127.0.0.1"). Not used with `addresses`. */
  findPort?: () => Promise<number>;
  /** Addresses other than 127.0.0.1 ports (each start gets a fresh one, released once that child has exited). */
  addresses?: ListenAddresses<A>;
  /** Where running children are recorded for installExitHandlers. Default: none. */
  registry?: ProcessRegistry;
  /** Output lines kept (stdout and stderr together). Default 200. */
  ringBufferLines?: number;
  /** Longer lines are cut. Default 4 096 bytes. */
  maxLineBytes?: number;
  /** Output lines quoted in start errors. Default 20. */
  errorLines?: number;
  /** The log level of each output line. Default: debug (llama-server's normal log is verbose). */
  outputLevel?: (line: string) => "debug" | "info" | "warn";
}

interface ProcessStatus {
  name: string;
  state: ProcessState;
  pid: number | null;
  /** The TCP port of the running child; null when stopped or when it listens elsewhere (a Unix socket). */
  port: number | null;
  /** Where the running child listens, for people (`127.0.0.1:8080`, `unix:/tmp/.../child.sock`); never a secret. */
  address: string | null;
  /** Automatic restarts since creation. */
  restarts: number;
  /** The last failure with the child's last output lines: for the log and the local operator, never an HTTP client. */
  lastError: string | null;
  /** When `failed`: the clock time from which a request may try again. */
  retryAt: number | null;
}

/** One spawned child and what is known about it. */
interface Running<A> {
  readonly child: ChildHandle;
  readonly address: A;
  exit: ExitInfo | null;
  /** Settles once the child has exited and its address was released. */
  readonly gone: Promise<void>;
  /** Set by recycle(): why the supervisor killed it (a wedged engine), for the logs and lastError. */
  recycled?: string;
  /** Stops its liveness checks (set while they run). */
  unwatch?: () => void;
}

const DEFAULT_RESTART: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  cooldownMs: 60_000,
};

const PORT_IN_USE = /EADDRINUSE|address already in use|couldn'?t bind|could not bind|failed to bind/i;

/** Hides the value after flags such as `--api-key` or `--hf-token` in logged command lines. */
function redactArgs(args: readonly string[]): string[] {
  return args.map((arg, i) => (i > 0 && /^--?[\w-]*(key|token|secret|password)$/i.test(args[i - 1]!) ? "[redacted]" : arg));
}

/** The default addresses: a free TCP port on 127.0.0.1 for each start, nothing to release. */
function portAddresses(findPort: () => Promise<number>): ListenAddresses<number> {
  return { allocate: findPort, release: async () => undefined, describe: (port) => `127.0.0.1:${port}` };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One long-lived child server (llama-server, the BitNet llama-server, a Python sidecar) as a small state machine:
 * `stopped → starting → ready → stopping → stopped`, plus `failed` (too many failures: 503 until a cooldown ends).
 *
 * `ensureReady` is the only way to start, and every decision (start, wait, restart, refuse) is taken here under
 * the state, never by a caller that read the state first. Concurrent callers share one start; a caller arriving
 * during a stop waits for it and then starts again; an unexpected exit while ready restarts the child in the
 * background with exponential backoff, and callers arriving meanwhile wait for that start.
 */
export class ManagedProcess<A = number> implements AsyncDisposable {
  private state: ProcessState = "stopped";
  /** The start or stop in progress (`starting`/`stopping`); a stop never rejects. */
  private transition: Promise<void> | null = null;
  /** Aborts the start in progress (used by stop). */
  private startControl: AbortController | null = null;
  private current: Running<A> | null = null;
  private failures: number[] = [];
  private failedUntil: number | null = null;
  /** The start after a cooldown: one failure sends it back to `failed`. */
  private probation = false;
  private restarts = 0;
  /** The last failure with the child's output (status, log). */
  private lastError: string | null = null;
  /** The same without the output: what ProcessFailedError tells clients. */
  private lastFailure: string | null = null;
  private closed = false;

  private readonly name: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly spawn: Spawner;
  private readonly addresses: ListenAddresses<A>;
  private readonly healthCheck: (address: A, signal: AbortSignal) => Promise<boolean>;
  private readonly policy: RestartPolicy;
  private readonly ring: RingBuffer<string>;

  constructor(private readonly options: ManagedProcessOptions<A>) {
    this.name = options.name;
    this.log = options.logger.child({ proc: options.name });
    this.clock = options.clock ?? systemClock;
    this.spawn = options.spawn ?? createExecaSpawner();
    if (options.addresses && !options.healthCheck) throw new TypeError(`${options.name}: a health check is required with addresses`);
    // Without `addresses`, A is number (the default type argument): a free port, checked over HTTP.
    const findPort = options.findPort ?? (() => findFreePort("127.0.0.1"));
    this.addresses = options.addresses ?? (portAddresses(findPort) as unknown as ListenAddresses<A>);
    this.healthCheck = options.healthCheck ?? (httpHealthCheck("/health") as unknown as (address: A, signal: AbortSignal) => Promise<boolean>);
    this.policy = { ...DEFAULT_RESTART, ...options.restart };
    this.ring = new RingBuffer(options.ringBufferLines ?? 200);
  }

  get status(): ProcessStatus {
    const address = this.current?.address;
    return {
      name: this.name,
      state: this.state,
      pid: this.current?.child.pid ?? null,
      port: address === undefined ? null : typeof address === "number" ? address : (this.addresses.port?.(address) ?? null),
      address: address === undefined ? null : this.addresses.describe(address),
      restarts: this.restarts,
      lastError: this.lastError,
      retryAt: this.state === "failed" ? this.failedUntil : null,
    };
  }

  /** The child's last output lines (stdout and stderr, across restarts), oldest first. */
  lastLines(n = this.options.errorLines ?? 20): string[] {
    return this.ring.last(n);
  }

  /**
   * Resolves with the child's address (its port by default) once it is healthy, starting it if needed. Aborting
   * `signal` stops this caller's waiting, never the shared start. Rejects with ProcessStartError (the start failed;
   * the child's output is logged and kept in `status.lastError`, never put in the error), ProcessFailedError (paused after repeated failures; carries the reason and
   * Retry-After), ProcessStoppedError (stop() cancelled the start) or ServiceUnavailableError `shutting_down` after
   * close().
   */
  async ensureReady(signal?: AbortSignal): Promise<{ address: A }> {
    for (;;) {
      if (this.closed) throw new ServiceUnavailableError(`The ${this.name} process is shut down.`, { code: "shutting_down" });
      if (signal?.aborted) throw abortReason(signal);
      switch (this.state) {
        case "ready":
          return { address: this.current!.address };
        case "starting":
        case "stopping":
          // Wait, then decide again: a stop is followed by a fresh start; a failed start rejects its waiters.
          await abortable(this.transition!, signal);
          continue;
        case "failed": {
          const wait = this.failedUntil! - this.clock.now();
          if (wait > 0) throw new ProcessFailedError(this.name, this.lastFailure ?? "unknown", wait);
          this.failedUntil = null;
          this.probation = true;
          this.beginStart("request");
          continue;
        }
        case "stopped":
          this.beginStart("request");
          continue;
      }
    }
  }

  /**
   * A caller found nothing listening on `address`. The child's exit event can arrive after its socket closed, so
   * this waits up to `waitMs` for it; once the exit is seen, the next `ensureReady` waits for the restart instead of
   * handing out the dead address again. True when the child that had `address` is gone (a retry is worth it).
   */
  async confirmGone(address: A, waitMs = 2_000, signal?: AbortSignal): Promise<boolean> {
    const running = this.current;
    if (running === null || running.address !== address || running.exit !== null) return true;
    let timer: unknown;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), waitMs);
    });
    try {
      // onChildExit was attached to `exited` first, so it has run by the time this resolves.
      return await abortable(Promise.race([running.child.exited.then(() => true), timeout]), signal);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  /**
   * Kills a ready child that is alive but useless (a generation that hangs) so the supervisor replaces it, with
   * the usual backoff and failure counting. Callers waiting in ensureReady get the new child.
   */
  recycle(reason: string): void {
    const running = this.current;
    if (this.state !== "ready" || running === null || running.exit !== null || running.recycled) return;
    running.recycled = reason;
    this.log.warn({ pid: running.child.pid, reason }, "replacing the process");
    running.child.killGroup("SIGKILL");
  }

  /**
   * Stops the child (SIGTERM to its process group, SIGKILL after `stopGraceMs`) and resolves once it has exited.
   * Cancels a start or a pending restart (their waiters get ProcessStoppedError). Idempotent; never rejects.
   * A `failed` process stays failed (its cooldown still applies).
   */
  stop(): Promise<void> {
    switch (this.state) {
      case "stopped":
      case "failed":
        return Promise.resolve();
      case "stopping":
        return this.transition!;
      case "starting": {
        const start = this.transition!;
        this.startControl?.abort(new ProcessStoppedError(this.name));
        this.startControl = null;
        return this.beginStop(
          "start cancelled",
          start.catch(() => undefined),
        );
      }
      case "ready": {
        const running = this.current!;
        running.unwatch?.();
        this.current = null;
        return this.beginStop("requested", this.terminate(running));
      }
    }
  }

  /** Stops the child and refuses further use. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private beginStop(reason: string, done: Promise<void>): Promise<void> {
    this.state = "stopping";
    this.log.info({ reason }, "stopping");
    const transition = done
      .catch((err: unknown) => this.log.error({ err }, "stop failed"))
      .then(() => {
        this.state = "stopped";
        this.log.info("stopped");
      });
    this.transition = transition;
    return transition;
  }

  /** Enters `starting`; `restart` waits out the backoff first and keeps trying until the policy gives up. */
  private beginStart(kind: "request" | "restart"): void {
    const control = new AbortController();
    this.startControl = control;
    this.state = "starting";
    const run = kind === "restart" ? this.restartLoop(control.signal) : this.startOnce(control.signal);
    const transition = run.then(
      async (running) => {
        if (control.signal.aborted) {
          // stop() came in just as the child became healthy: it owns the state now.
          await this.terminate(running);
          throw abortReason(control.signal);
        }
        this.startControl = null;
        this.current = running;
        this.state = "ready";
        if (this.probation) {
          this.probation = false;
          this.failures = [];
        }
        this.log.info({ pid: running.child.pid, ...this.where(running.address) }, "ready");
        this.watch(running);
        if (running.exit) this.onCrash(running); // it died between the health check and now
      },
      (err: unknown) => {
        if (!control.signal.aborted) {
          this.startControl = null;
          this.state = this.failedUntil !== null ? "failed" : "stopped";
        }
        throw err;
      },
    );
    transition.catch(() => undefined); // whoever waits handles it; never an unhandled rejection
    this.transition = transition;
  }

  private async startOnce(signal: AbortSignal): Promise<Running<A>> {
    try {
      return await this.launchOnFreePort(signal);
    } catch (err) {
      if (!signal.aborted) this.noteStartFailure(err);
      throw err;
    }
  }

  private async restartLoop(signal: AbortSignal): Promise<Running<A>> {
    for (;;) {
      if (this.failedUntil !== null) {
        throw new ProcessFailedError(this.name, this.lastFailure ?? "unknown", this.failedUntil - this.clock.now());
      }
      const delayMs = Math.min(this.policy.backoffMaxMs, this.policy.backoffInitialMs * 2 ** Math.max(0, this.failures.length - 1));
      this.log.warn({ delayMs, failures: this.failures.length }, "restarting after backoff");
      await clockSleep(this.clock, delayMs, signal);
      this.restarts++;
      try {
        return await this.launchOnFreePort(signal);
      } catch (err) {
        if (signal.aborted) throw err;
        this.noteStartFailure(err);
      }
    }
  }

  /** A failed start, with the child's output in the log (the error itself tells the client only what failed). */
  private noteStartFailure(err: unknown): void {
    if (err instanceof ProcessStartError) {
      this.log.error({ reason: err.reason, lastLines: err.lastLines }, "failed to start");
      this.noteFailure(err.message, err.detail);
    } else {
      this.log.error({ err }, "failed to start");
      this.noteFailure(messageOf(err), messageOf(err));
    }
  }

  /**
   * Records a crash or failed start (`summary` for clients, `detail` with the child's output for status); past the
   * policy (or on probation) the process becomes `failed` for the cooldown.
   */
  private noteFailure(summary: string, detail: string): void {
    const now = this.clock.now();
    this.lastError = detail;
    this.lastFailure = summary;
    this.failures = this.failures.filter((t) => now - t < this.policy.windowMs);
    this.failures.push(now);
    if (this.probation || this.failures.length > this.policy.maxRestarts) {
      this.log.error({ failures: this.failures.length, cooldownMs: this.policy.cooldownMs, reason: summary }, "too many failures: paused for the cooldown");
      this.failedUntil = now + this.policy.cooldownMs;
      this.failures = [];
      this.probation = false;
    }
  }

  private onChildExit(running: Running<A>, info: ExitInfo): void {
    running.exit = info;
    running.unwatch?.();
    this.options.registry?.delete(running.child);
    if (this.current === running && this.state === "ready") this.onCrash(running);
  }

  /** The child died while ready: restart it in the background (or pause it, past the policy). */
  private onCrash(running: Running<A>): void {
    const reason = running.recycled ? `replaced: ${running.recycled}` : `${describeExit(running.exit!)} unexpectedly`;
    const lines = this.lastLines();
    this.log.warn({ pid: running.child.pid, reason, lastLines: lines }, "process died");
    this.current = null;
    running.child.killGroup("SIGKILL"); // whatever it left behind in its group
    const what = running.recycled ? `was replaced (${running.recycled})` : reason;
    const summary = `The ${this.name} process ${what}${lines.length > 0 ? "; its last output is in the daemon log" : ""}.`;
    this.noteFailure(summary, withOutput(reason, lines));
    if (this.failedUntil !== null) {
      this.state = "failed";
      return;
    }
    this.beginStart("restart");
  }

  private async launchOnFreePort(signal: AbortSignal): Promise<Running<A>> {
    const retries = this.options.portRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let address: A;
      try {
        address = await this.addresses.allocate();
      } catch (err) {
        // The error names local paths: for the log (as an output line), not the client.
        throw new ProcessStartError(this.name, `has nowhere to listen${errorCode(err)}`, [messageOf(err)], { cause: err });
      }
      if (signal.aborted) {
        await this.release(address);
        throw abortReason(signal);
      }
      try {
        return await this.launch(address, signal);
      } catch (err) {
        if (!(err instanceof ProcessStartError && err.portInUse) || attempt >= retries || signal.aborted) throw err;
        this.log.warn(this.where(address), "address taken by another program: trying another");
      }
    }
  }

  private async release(address: A): Promise<void> {
    try {
      await this.addresses.release(address);
    } catch (err) {
      this.log.warn({ err, ...this.where(address) }, "could not release the address");
    }
  }

  /** For logs: `{port}` for a TCP port, else `{address}` as `addresses.describe` puts it. */
  private where(address: A): { port: number } | { address: string } {
    return typeof address === "number" ? { port: address } : { address: this.addresses.describe(address) };
  }

  /**
   * Spawns the child on `address` and polls its health until ready; on any failure kills its group and rejects.
   * The address is released once the child has exited (or at once, when it could not be spawned).
   */
  private async launch(address: A, signal: AbortSignal): Promise<Running<A>> {
    const mark = this.ring.total;
    const errorLines = this.options.errorLines ?? 20;
    const linesSoFar = () => this.ring.since(mark).slice(-errorLines);
    let command: CommandSpec;
    let child: ChildHandle;
    try {
      command = this.options.command(address);
      child = this.spawn(command);
    } catch (err) {
      await this.release(address);
      throw new ProcessStartError(this.name, `could not be spawned${errorCode(err)}`, [messageOf(err)], { cause: err });
    }
    const running: Running<A> = { child, address, exit: null, gone: child.exited.then(() => this.release(address)) };
    this.options.registry?.add(child);
    this.pipeOutput(child);
    void child.exited.then((info) => this.onChildExit(running, info));
    this.log.info({ pid: child.pid, ...this.where(address), file: command.file, args: redactArgs(command.args) }, "starting");

    const attempt = new AbortController();
    let failure: Error | null = null;
    const fail = (err: Error) => {
      if (failure !== null) return;
      failure = err;
      attempt.abort(err);
    };
    const onAbort = () => fail(abortReason(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const startTimeoutMs = this.options.startTimeoutMs ?? 60_000;
    const deadline = this.clock.setTimeout(
      () => fail(new ProcessStartError(this.name, `did not become healthy within ${startTimeoutMs} ms`, linesSoFar())),
      startTimeoutMs,
    );
    void child.exited.then((info) => {
      const lines = linesSoFar();
      const portInUse = info.error === undefined && (this.options.portInUsePattern ?? PORT_IN_USE).test(lines.join("\n"));
      const reason = info.error ? describeExit(info) : `${describeExit(info)} while starting`;
      fail(new ProcessStartError(this.name, reason, info.error ? [...lines, info.error.message] : lines, { portInUse, cause: info.error }));
    });

    let healthy = false;
    try {
      await this.pollHealth(address, attempt.signal);
      healthy = failure === null;
    } catch {
      // only an abort ends the polling early: `failure` says why
    } finally {
      this.clock.clearTimeout(deadline);
      signal.removeEventListener("abort", onAbort);
    }
    if (healthy) return running;
    await this.terminate(running);
    throw failure ?? new ProcessStartError(this.name, "failed for an unknown reason", linesSoFar());
  }

  private async pollHealth(address: A, signal: AbortSignal): Promise<void> {
    let interval = this.options.healthIntervalMs ?? 50;
    const maxInterval = this.options.healthIntervalMaxMs ?? 500;
    for (;;) {
      if (signal.aborted) throw abortReason(signal);
      if (await this.checkOnce(address, signal)) return;
      await clockSleep(this.clock, interval, signal);
      interval = Math.min(maxInterval, interval * 2);
    }
  }

  /** Health checks while ready (livenessIntervalMs): a child that stops answering is replaced. */
  private watch(running: Running<A>): void {
    const interval = this.options.livenessIntervalMs ?? 15_000;
    if (interval <= 0 || running.exit) return;
    const limit = this.options.livenessFailures ?? 3;
    const control = new AbortController();
    let timer: unknown = null;
    let failures = 0;
    running.unwatch = () => {
      control.abort();
      this.clock.clearTimeout(timer);
    };
    const live = () => !control.signal.aborted && this.current === running && running.exit === null;
    const tick = async () => {
      if (!live()) return;
      const ok = await this.checkOnce(running.address, control.signal);
      if (!live()) return;
      failures = ok ? 0 : failures + 1;
      if (failures >= limit) {
        running.unwatch?.();
        this.recycle(`its health check failed ${failures} times in a row`);
        return;
      }
      timer = this.clock.setTimeout(() => void tick(), interval);
    };
    timer = this.clock.setTimeout(() => void tick(), interval);
  }

  private async checkOnce(address: A, signal: AbortSignal): Promise<boolean> {
    const control = new AbortController();
    const onAbort = () => control.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = this.clock.setTimeout(() => control.abort(new Error("health check timed out")), this.options.healthCheckTimeoutMs ?? 2_000);
    try {
      return await abortable(this.healthCheck(address, control.signal), control.signal);
    } catch {
      return false;
    } finally {
      this.clock.clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * SIGTERM to the group, SIGKILL after the grace period, then SIGKILL to whatever else is left in the group;
   * resolves once the child's address is released too.
   */
  private async terminate(running: Running<A>): Promise<void> {
    const { child } = running;
    const graceMs = this.options.stopGraceMs ?? 5_000;
    child.killGroup("SIGTERM");
    const grace = new AbortController();
    const timedOut = await Promise.race([
      child.exited.then(() => false),
      clockSleep(this.clock, graceMs, grace.signal).then(
        () => true,
        () => false,
      ),
    ]);
    grace.abort();
    if (timedOut) {
      this.log.warn({ pid: child.pid, graceMs }, "did not exit after SIGTERM: SIGKILL");
      child.killGroup("SIGKILL");
      await child.exited;
    }
    child.killGroup("SIGKILL");
    await running.gone;
  }

  private pipeOutput(child: ChildHandle): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const readable = child[stream];
      if (!readable) continue;
      // llama-server writes its normal log to stderr: both streams go to debug, and both into the ring buffer.
      const log = this.log.child({ pid: child.pid, stream });
      const splitter = new LineSplitter((line) => {
        this.ring.push(line);
        log[this.options.outputLevel?.(line) ?? "debug"](line);
      }, this.options.maxLineBytes ?? 4096);
      readable.on("data", (chunk: Buffer | string) => splitter.push(chunk));
      readable.once("end", () => splitter.flush());
      readable.on("error", () => undefined);
    }
  }
}
