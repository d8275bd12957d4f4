import type { Logger } from "pino";
import type { BackendFactory } from "../backends/Backend.js";
import type { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import type { Clock } from "../core/Clock.js";
import type { ModelDescriptor } from "../core/types.js";
import type { EngineName } from "../core/detectionSchema.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import type { RequestedFeature } from "../engines/capabilities.js";
import { checkCapabilities } from "../engines/checkCapabilities.js";
import { ENGINES } from "../engines/engineTable.js";
import { EngineUnavailableError } from "../core/errors.js";
import { EvictionPolicy } from "./EvictionPolicy.js";
import { ModelCatalog, type Endpoint, type ModelStatus, type PendingModel, type UsageOf } from "./ModelCatalog.js";
import { ModelRunner, type Lease } from "./ModelRunner.js";
import { RequestAdmission } from "./RequestAdmission.js";

// The types callers know the router by; they live with the module that owns them.
export { type ModelStatus, type PendingModel } from "./ModelCatalog.js";

export interface ModelRouterOptions {
  registry: ModelRegistry;
  /** The engines this daemon can run; a model routed to any other answers 503 engine_unavailable. */
  backends: Partial<Record<EngineName, BackendFactory>>;
  clock: Clock;
  logger: Logger;
  idleTtlMs: number;
  queueSize: number;
  /** Models on upstream servers, after the local ones (a local id wins). */
  upstreams?: UpstreamCatalog;
  /** Requests admitted at once (running or queued) across all models; default unlimited. */
  maxInflight?: number;
  /** Called after each successful model load (metrics). */
  onModelLoaded?: (id: string, engine: string | null, seconds: number) => void;
  /** Most models loaded at once; loading another evicts the least recently used idle one. 0 or unset: no limit. */
  maxLoadedModels?: number;
  /** Estimated bytes all loaded models may use together (see estimateMemory); 0 or unset: no limit. */
  memoryBudgetBytes?: number;
  /** A model's resident size while loaded; default its file size. */
  estimateMemory?: (descriptor: ModelDescriptor) => number;
  /** A per-model idle TTL in ms, overriding idleTtlMs (0 = never unload). */
  idleTtlFor?: (id: string) => number | undefined;
  /** Other names for models: alias → model id. A model with the same id wins over an alias. */
  aliases?: Record<string, string>;
}

/**
 * Which model serves a request, and its lifecycle: a facade over the catalog (names → descriptors, endpoint
 * checks), admission (shutdown, the daemon's in-flight cap) and eviction (idle TTL, model count, memory budget).
 * Backends are created lazily, one runner per model; the runner owns that model's queue and load/unload.
 */
export class ModelRouter {
  private readonly runners = new Map<string, ModelRunner>();
  private readonly catalog: ModelCatalog;
  private readonly admission: RequestAdmission;
  private readonly eviction: EvictionPolicy;
  private readonly usage: UsageOf = (id) => this.runners.get(id)?.status;

  constructor(private readonly options: ModelRouterOptions) {
    this.catalog = new ModelCatalog(options);
    this.admission = new RequestAdmission({ maxInflight: options.maxInflight });
    this.eviction = new EvictionPolicy({ ...options, runners: this.runners });
  }

  /** Shows a model that is being pulled; requests for it answer 503 with Retry-After until `finishPending`. */
  setPending(id: string, model: PendingModel): void {
    this.catalog.setPending(id, model);
  }

  /** The pull is done (the model is in the registry now) or abandoned. */
  finishPending(id: string): void {
    this.catalog.finishPending(id);
  }

  get registry(): ModelRegistry {
    return this.catalog.registry;
  }

  resolve(modelId: string, endpoint: Endpoint): ModelDescriptor {
    return this.catalog.resolve(modelId, endpoint);
  }

  /**
   * Validates a request before it takes a slot or loads anything: the model exists, serves the endpoint, and its
   * engine has every feature the request asks for (400 unsupported_parameter naming the first one it lacks).
   */
  async check(modelId: string, endpoint: Endpoint, features: readonly RequestedFeature[], signal: AbortSignal): Promise<ModelDescriptor> {
    await this.catalog.refreshIfUnknown(modelId, signal);
    const descriptor = this.catalog.resolve(modelId, endpoint);
    checkCapabilities(descriptor, endpoint, features);
    return descriptor;
  }

  /** Validates the model for the endpoint, waits for a slot and a loaded engine. Release the lease when done. */
  async acquire(modelId: string, endpoint: Endpoint, signal: AbortSignal): Promise<Lease> {
    await this.catalog.refreshIfUnknown(modelId, signal);
    const descriptor = this.catalog.resolve(modelId, endpoint);
    // The runner is created only once the request is admitted; a refusal looks at an existing one only.
    return this.admission.admit(
      {
        loadingRefusal: () => this.runners.get(descriptor.id)?.loadingRefusal() ?? null,
        acquire: (s) => this.runnerFor(descriptor).acquire(s),
      },
      signal,
    );
  }

  private runnerFor(descriptor: ModelDescriptor): ModelRunner {
    let runner = this.runners.get(descriptor.id);
    if (!runner) {
      const { backends, queueSize, clock, logger, onModelLoaded } = this.options;
      runner = new ModelRunner(backends[descriptor.engine!]!(descriptor), {
        idleTtlMs: this.eviction.idleTtl(descriptor.id),
        admit: (signal) => this.eviction.makeRoom(descriptor, signal),
        queueSize,
        clock,
        logger: logger.child({ model: descriptor.id, engine: descriptor.engine }),
        onLoad: (seconds) => onModelLoaded?.(descriptor.id, descriptor.engine, seconds),
      });
      this.runners.set(descriptor.id, runner);
    }
    return runner;
  }

  /** Loads models at start (config `preload`); failures are logged, not fatal. Aliases are accepted. */
  async preload(ids: readonly string[], signal: AbortSignal): Promise<void> {
    for (const id of ids) {
      const descriptor = this.catalog.lookup(id);
      if (!descriptor || !this.catalog.canRun(descriptor)) {
        this.options.logger.warn({ model: id }, descriptor ? "preload skipped: no engine can run this model here" : "preload skipped: no such model");
        continue;
      }
      try {
        await this.runnerFor(descriptor).preload(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.options.logger.error({ model: id, err: (err as Error).message }, "preload failed");
      }
    }
  }

  /**
   * Loads a local model now, without a request (the management API), as a first request would: eviction and the
   * memory budget apply, and a failure throws the engine's reason. Resolves once it is loaded.
   */
  async load(descriptor: ModelDescriptor, signal: AbortSignal): Promise<void> {
    if (!this.catalog.canRun(descriptor))
      throw new EngineUnavailableError(descriptor.id, String(descriptor.engine), descriptor.engine ? ENGINES[descriptor.engine].install : "");
    await this.runnerFor(descriptor).preload(signal);
  }

  /**
   * Unloads a model now unless requests hold or wait for it (then nothing is done: "busy"); the decision is the
   * runner's, taken under its state.
   */
  async unload(id: string): Promise<"unloaded" | "not-loaded" | "busy"> {
    const runner = this.runners.get(id);
    if (!runner || runner.status.state === "unloaded") return "not-loaded";
    return (await runner.unloadIfIdle()) ? "unloaded" : "busy";
  }

  /** Drops the runner of a model that is no longer served (deleted), once it is unloaded and idle. */
  forget(id: string): void {
    const runner = this.runners.get(id);
    if (runner && !runner.busy && runner.status.state === "unloaded") this.runners.delete(id);
  }

  /** Brings upstream model lists up to date (cached; an upstream that is down is reported, not fatal). */
  async refreshUpstreams(signal?: AbortSignal): Promise<void> {
    await this.catalog.refreshUpstreams(signal);
  }

  /** Automatic restarts of each model's child process (engines that run one). */
  restartCounts(): { model: string; restarts: number }[] {
    return [...this.runners].flatMap(([model, runner]) => {
      const restarts = runner.backend.processStatus?.restarts;
      return restarts === undefined ? [] : [{ model, restarts }];
    });
  }

  upstreamStatus() {
    return this.catalog.upstreamStatus();
  }

  status(): ModelStatus[] {
    return this.catalog.status(this.usage);
  }

  modelStatus(id: string): ModelStatus | undefined {
    return this.catalog.modelStatus(id, this.usage);
  }

  /** Refuses new requests, then unloads every model. Call after in-flight requests have drained. */
  async close(): Promise<void> {
    this.admission.close();
    await Promise.all([...this.runners.values()].map((r) => r.close()));
  }
}
