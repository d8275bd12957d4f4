import type { Logger } from "pino";
import type { Backend, RuntimeInfo } from "../backends/Backend.js";
import { abortable } from "../core/abortable.js";
import type { Clock } from "../core/Clock.js";
import { ModelLoadError, ModelLoadingError, QueueFullError, ServiceUnavailableError, TabAgentError } from "../core/errors.js";
import { loadingRetryAfterSeconds, queueRetryAfterSeconds } from "./RequestAdmission.js";
import { QueueOverflow, SlotQueue } from "./SlotQueue.js";

export type RunnerState = "unloaded" | "loading" | "loaded" | "unloading";

interface RunnerOptions {
  idleTtlMs: number;
  queueSize: number;
  clock: Clock;
  logger: Logger;
  /** Called with the load time of every successful load (metrics). */
  onLoad?: (seconds: number) => void;
  /**
   * Runs inside every load, before the engine's: makes room (the router unloads least recently used idle models
   * to respect the loaded-model count and memory budget) or throws to refuse the load.
   */
  admit?: (signal: AbortSignal) => Promise<void>;
}

export interface Lease {
  backend: Backend;
  release(): void;
}

/**
 * Lifecycle of one model: load on first use (one load shared by all who need it), count users, unload after an
 * idle TTL. Every decision to load or unload is taken here, under the state, never by a caller that read it.
 */
export class ModelRunner {
  private state: RunnerState = "unloaded";
  private transition: Promise<void> | null = null;
  private users = 0;
  private idleTimer: unknown = null;
  private closed = false;
  private readonly slots: SlotQueue;
  private readonly lifetime = new AbortController();
  lastLoadError: string | null = null;
  /** Clock time of the last acquire or release: the least recently used idle model is evicted first. */
  lastUsed = 0;
  /** Clock time the current (or last) load started, and how long the last successful load took (Retry-After). */
  private loadStartedAt = 0;
  private lastLoadMs: number | null = null;

  constructor(
    readonly backend: Backend,
    private readonly options: RunnerOptions,
  ) {
    this.slots = new SlotQueue(backend.parallel, options.queueSize);
  }

  get status(): { state: RunnerState; running: number; queued: number; runtime: RuntimeInfo | null } {
    return {
      state: this.state,
      running: this.slots.running,
      queued: this.slots.queued,
      runtime: this.state === "loaded" ? (this.backend.runtimeInfo?.() ?? null) : null,
    };
  }

  get busy(): boolean {
    return this.users > 0;
  }

  /** Waits for a slot, makes sure the model is loaded, and returns a lease that must be released exactly once. */
  async acquire(signal: AbortSignal): Promise<Lease> {
    if (this.closed) throw new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" });
    this.users++;
    this.lastUsed = this.options.clock.now();
    this.cancelIdleTimer();
    let releaseSlot: (() => void) | null = null;
    try {
      releaseSlot = await this.slots.acquire(signal).catch((err: unknown) => {
        if (err instanceof QueueOverflow) {
          throw this.loadingRefusal() ?? new QueueFullError(this.backend.descriptor.id, queueRetryAfterSeconds(this.slots.queued, this.backend.parallel));
        }
        throw err;
      });
      await this.ensureLoaded(signal);
    } catch (err) {
      releaseSlot?.();
      this.release();
      throw err;
    }
    let done = false;
    const slot = releaseSlot;
    return {
      backend: this.backend,
      release: () => {
        if (done) return;
        done = true;
        slot();
        this.release();
      },
    };
  }

  /**
   * While the model loads, the 503 for a request that cannot be admitted (its queue, or the daemon's in-flight cap,
   * is full): the backlog drains once the model is up (Retry-After: loadingRetryAfterSeconds). Null when the model
   * is not loading.
   */
  loadingRefusal(): ModelLoadingError | null {
    if (this.state !== "loading") return null;
    const elapsed = this.options.clock.now() - this.loadStartedAt;
    return new ModelLoadingError(this.backend.descriptor.id, loadingRetryAfterSeconds(elapsed, this.lastLoadMs));
  }

  private release(): void {
    this.users--;
    this.lastUsed = this.options.clock.now();
    if (this.users === 0) this.armIdleTimer();
  }

  private async ensureLoaded(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.closed) throw new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" });
      switch (this.state) {
        case "loaded":
          return;
        case "loading":
        case "unloading":
          // Wait for the transition, then decide again: an unload in progress is followed by a fresh load,
          // and a failed load rejects every request that waited for it.
          await abortable(this.transition!, signal);
          continue;
        case "unloaded":
          this.startLoad();
          continue;
      }
    }
  }

  private startLoad(): void {
    const { logger, clock } = this.options;
    const started = clock.now();
    this.loadStartedAt = started;
    this.state = "loading";
    logger.info("loading model");
    const signal = this.lifetime.signal;
    const admit = this.options.admit;
    this.transition = (admit ? admit(signal).then(() => this.backend.load(signal)) : this.backend.load(signal)).then(
      () => {
        this.state = "loaded";
        this.lastLoadError = null;
        this.lastLoadMs = clock.now() - started;
        logger.info({ ms: this.lastLoadMs }, "model loaded");
        this.options.onLoad?.((clock.now() - started) / 1000);
        if (this.users === 0) this.armIdleTimer();
      },
      (err: unknown) => {
        this.lastLoadError = err instanceof Error ? err.message : String(err);
        logger.error({ err }, "model failed to load");
        // Nothing half-loaded stays behind, and the next load waits for that cleanup: the engine's unload may still
        // be freeing the memory or the port a new load would take. Those who waited for this load fail now;
        // requests arriving during the cleanup wait for it and then load afresh.
        this.cleanUpFailedLoad();
        throw err instanceof TabAgentError ? err : new ModelLoadError(this.backend.descriptor.id, this.lastLoadError, err);
      },
    );
    this.transition.catch(() => undefined); // handled by whoever waits; never an unhandled rejection
  }

  private cleanUpFailedLoad(): void {
    this.state = "unloading";
    // An unload that throws instead of rejecting must not leave the state "unloading" for good.
    this.transition = new Promise<void>((resolve) => resolve(this.backend.unload())).then(
      () => {
        this.state = "unloaded";
      },
      (err: unknown) => {
        this.state = "unloaded";
        this.options.logger.warn({ err }, "cleanup after a failed load failed");
      },
    );
  }

  private startUnload(reason: string): Promise<void> {
    const { logger } = this.options;
    this.state = "unloading";
    logger.info({ reason }, "unloading model");
    this.transition = this.backend.unload().then(
      () => {
        this.state = "unloaded";
        logger.info("model unloaded");
      },
      (err: unknown) => {
        this.state = "unloaded";
        logger.error({ err }, "model unload failed");
      },
    );
    return this.transition;
  }

  private armIdleTimer(): void {
    const { idleTtlMs, clock } = this.options;
    if (idleTtlMs <= 0 || this.state !== "loaded" || this.closed) return;
    this.cancelIdleTimer();
    this.idleTimer = clock.setTimeout(() => {
      this.idleTimer = null;
      if (this.users === 0 && this.state === "loaded") void this.startUnload("idle");
    }, idleTtlMs);
  }

  private cancelIdleTimer(): void {
    if (this.idleTimer !== null) {
      this.options.clock.clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  /**
   * Unloads now when nobody holds or waits for the model (eviction). Decided synchronously: between this check and
   * the state change no request can slip in. Resolves when the unload is done; null when the model is busy or not loaded.
   */
  evict(reason: string): Promise<void> | null {
    if (this.users > 0 || this.state !== "loaded" || this.closed) return null;
    this.cancelIdleTimer();
    return this.startUnload(reason);
  }

  /** Loads the model without a request (preload); the idle TTL then applies as after any request. */
  async preload(signal: AbortSignal): Promise<void> {
    const lease = await this.acquire(signal);
    lease.release();
  }

  /** The load or unload in progress, if any (the router waits on it before planning again). */
  get pendingTransition(): Promise<void> | null {
    return this.state === "loading" || this.state === "unloading" ? this.transition : null;
  }

  /** Unloads now if idle (used by shutdown after requests drained, and by explicit unload). */
  async unloadIfIdle(): Promise<boolean> {
    if (this.users > 0) return false;
    this.cancelIdleTimer();
    await this.settle(() => this.users > 0);
    if (this.users > 0) return false;
    if (this.state === "loaded") await this.startUnload("requested");
    return true;
  }

  /** Refuses new work, aborts an in-flight load and unloads. Callers drain requests first. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelIdleTimer();
    this.lifetime.abort(new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" }));
    await this.settle();
    if (this.state === "loaded") await this.startUnload("shutdown");
  }

  /** Waits until no load or unload is in progress (a failed load is followed by its cleanup unload), or `stop`. */
  private async settle(stop: () => boolean = () => false): Promise<void> {
    while ((this.state === "loading" || this.state === "unloading") && this.transition && !stop()) await this.transition.catch(() => undefined);
  }
}
