import type { Logger } from "pino";
import type { Backend, BackendFactory } from "../backends/Backend.js";
import type { Clock } from "../core/Clock.js";
import {
  ChatTemplateError,
  EngineUnavailableError,
  InvalidRequestError,
  ModelNotFoundError,
  ModelNotServableError,
  ServerBusyError,
  ServiceUnavailableError,
  WrongTaskError,
} from "../core/errors.js";
import type { EngineName } from "../detection/detectionSchema.js";
import type { ModelDescriptor } from "../core/types.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import type { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import { ModelRunner, type Lease, type RunnerState } from "./ModelRunner.js";
import { planEviction } from "./planEviction.js";
import { abortable } from "../core/abortable.js";
import { ModelDownloadFailedError, ModelDownloadingError } from "../store/errors.js";

export type Endpoint = "chat" | "completions" | "embeddings";

/** How a user gets an engine this build cannot run yet; one place, so every error says the same. */
export const ENGINE_HELP: Record<EngineName, string> = {
  "node-llama-cpp": "node-llama-cpp failed to install; run `npm ci` again",
  "llama-server": "this daemon was started without the llama-server engine; see docs/native.md",
  "llama-server-bitnet": "this daemon was started without the BitNet llama-server engine; see docs/native.md",
  onnxruntime: "onnxruntime-node failed to install; run `npm ci` again (docs/backends.md, ONNX Runtime)",
  transformers: "the Python transformers sidecar is not available; run `tabagent setup python` (docs/backends.md)",
  litert: "LiteRT models are not served by this version yet",
  upstream: "no upstream server is configured for this model",
};

const ENDPOINT_PATH: Record<Endpoint, string> = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
  embeddings: "/v1/embeddings",
};

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

/** A model from the config that is still being pulled from the hub (or whose pull failed). */
export interface PendingModel {
  /** What is known before the files are there (format and size from the hub's listing). */
  descriptor: ModelDescriptor;
  state: "downloading" | "download-failed";
  doneBytes: number;
  totalBytes: number;
  bytesPerSecond: number | null;
  error: string | null;
}

export interface ModelStatus {
  descriptor: ModelDescriptor;
  state: RunnerState | PendingModel["state"];
  running: number;
  queued: number;
  /** Set for an alias: the model it names. */
  aliasOf?: string;
  /** Set while the model is being pulled. */
  download?: { doneBytes: number; totalBytes: number; error: string | null };
}

/** Which model serves a request, and its lifecycle. Backends are created lazily, one per model. */
export class ModelRouter {
  private readonly runners = new Map<string, ModelRunner>();
  private readonly pending = new Map<string, PendingModel>();
  private closing = false;
  private inflight = 0;

  constructor(private readonly options: ModelRouterOptions) {}

  /** Shows a model that is being pulled; requests for it answer 503 with Retry-After until `finishPending`. */
  setPending(id: string, model: PendingModel): void {
    this.pending.set(id, model);
  }

  /** The pull is done (the model is in the registry now) or abandoned. */
  finishPending(id: string): void {
    this.pending.delete(id);
  }

  /** A request for a model still downloading: 503 with a Retry-After from the remaining bytes and the speed. */
  private pendingError(id: string, p: PendingModel): Error {
    if (p.state === "download-failed") return new ModelDownloadFailedError(id, p.error ?? "unknown error");
    const left = Math.max(0, p.totalBytes - p.doneBytes);
    const eta = p.bytesPerSecond && p.bytesPerSecond > 0 ? left / p.bytesPerSecond : 30;
    const pct = p.totalBytes > 0 ? Math.floor((p.doneBytes / p.totalBytes) * 100) : 0;
    return new ModelDownloadingError(id, `${pct}% of ${p.totalBytes} bytes`, Math.min(300, Math.max(1, Math.ceil(eta))));
  }

  get registry(): ModelRegistry {
    return this.options.registry;
  }

  private lookup(modelId: string): ModelDescriptor | undefined {
    const local = this.options.registry.get(modelId);
    if (local) return local;
    const target = this.options.aliases?.[modelId];
    if (target !== undefined && target !== modelId) {
      const aliased = this.options.registry.get(target);
      if (aliased) return aliased;
    }
    return this.options.upstreams?.resolve(target ?? modelId) ?? (target !== undefined ? this.options.upstreams?.resolve(modelId) : undefined);
  }

  resolve(modelId: string, endpoint: Endpoint): ModelDescriptor {
    const pendingId = this.options.registry.get(modelId) ? undefined : (this.pending.has(modelId) ? modelId : this.options.aliases?.[modelId]);
    const pending = pendingId === undefined ? undefined : this.pending.get(pendingId);
    if (pending) throw this.pendingError(pendingId!, pending);
    const descriptor = this.lookup(modelId);
    if (!descriptor) throw new ModelNotFoundError(modelId);
    if (descriptor.engine === "upstream") return descriptor; // the upstream judges its own models
    const { task, detection } = descriptor;
    if (descriptor.engine === null) {
      const why = detection.format === "unknown" ? `its format is not recognised (${detection.reason})` : (detection.warnings.at(-1) ?? detection.reason);
      throw new ModelNotServableError(modelId, why);
    }
    const path = ENDPOINT_PATH[endpoint];
    const fits =
      endpoint === "embeddings" ? task === "embeddings" : endpoint === "chat" ? task === "chat" || task === "text-generation" : ["chat", "text-generation", "text2text"].includes(task);
    if (!fits) throw new WrongTaskError(modelId, task, path);
    if (endpoint === "chat" && task === "text-generation") {
      throw new InvalidRequestError(
        `The model '${modelId}' has no chat template, so it cannot serve ${path}; use /v1/completions.`,
        { param: "model", code: "model_task_mismatch" },
      );
    }
    // Known bad (it hung or exhausted memory once): refused before it takes a slot or a load.
    if (endpoint === "chat" && descriptor.chatTemplateProblem) throw new ChatTemplateError(modelId, descriptor.chatTemplateProblem);
    if (!this.options.backends[descriptor.engine]) {
      throw new EngineUnavailableError(modelId, descriptor.engine, ENGINE_HELP[descriptor.engine]);
    }
    return descriptor;
  }

  /** Validates the model for the endpoint, waits for a slot and a loaded engine. Release the lease when done. */
  async acquire(modelId: string, endpoint: Endpoint, signal: AbortSignal): Promise<Lease> {
    // An id nobody knows may be new on an upstream: refresh stale lists once before answering 404.
    if (!this.lookup(modelId) && this.options.upstreams?.size) await this.options.upstreams.refresh(signal);
    const descriptor = this.resolve(modelId, endpoint);
    if (this.closing) throw new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" });
    const limit = this.options.maxInflight ?? Infinity;
    // Over the cap: 429, or 503 when the model asked for is still loading (it is not too much work, just not yet).
    if (this.inflight >= limit) throw this.runners.get(descriptor.id)?.loadingRefusal() ?? new ServerBusyError(limit);
    this.inflight++;
    let lease: Lease;
    try {
      lease = await this.runnerFor(descriptor).acquire(signal);
    } catch (err) {
      this.inflight--;
      throw err;
    }
    let released = false;
    return {
      backend: lease.backend,
      release: () => {
        if (released) return;
        released = true;
        this.inflight--;
        lease.release();
      },
    };
  }

  private runnerFor(descriptor: ModelDescriptor): ModelRunner {
    let runner = this.runners.get(descriptor.id);
    if (!runner) {
      const backend: Backend = this.options.backends[descriptor.engine!]!(descriptor);
      runner = new ModelRunner(backend, {
        idleTtlMs: this.options.idleTtlFor?.(descriptor.id) ?? this.options.idleTtlMs,
        admit: (signal) => this.admit(descriptor, signal),
        queueSize: this.options.queueSize,
        clock: this.options.clock,
        logger: this.options.logger.child({ model: descriptor.id, engine: descriptor.engine }),
        onLoad: (seconds) => this.options.onModelLoaded?.(descriptor.id, descriptor.engine, seconds),
      });
      this.runners.set(descriptor.id, runner);
    }
    return runner;
  }

  private limited(): boolean {
    return (this.options.maxLoadedModels ?? 0) > 0 || (this.options.memoryBudgetBytes ?? 0) > 0;
  }

  private estimate(descriptor: ModelDescriptor): number {
    return this.options.estimateMemory?.(descriptor) ?? descriptor.sizeBytes;
  }

  /**
   * Makes room for `descriptor` before it loads: evicts least recently used idle models until the loaded-model count
   * and the memory budget allow it, waits for loads/unloads in progress when they decide it, and refuses (503) when
   * every model that is in the way is serving requests. Called from inside the runner's load, so concurrent loads
   * see each other as resident.
   */
  private async admit(descriptor: ModelDescriptor, signal: AbortSignal): Promise<void> {
    if (!this.limited() || descriptor.engine === "upstream") return;
    const limits = { maxLoaded: this.options.maxLoadedModels ?? 0, memoryBudget: this.options.memoryBudgetBytes ?? 0 };
    const bytes = this.estimate(descriptor);
    for (;;) {
      const resident = [...this.runners.entries()]
        .filter(([id, r]) => id !== descriptor.id && r.status.state !== "unloaded" && r.backend.descriptor.engine !== "upstream")
        .map(([id, r]) => ({ id, bytes: this.estimate(r.backend.descriptor), lastUsed: r.lastUsed, busy: r.busy, state: r.status.state }));
      const plan = planEviction(resident, { id: descriptor.id, bytes }, limits);
      if (plan.ok) {
        if (plan.victims.length === 0) return;
        const unloads = plan.victims.flatMap((id) => {
          const t = this.runners.get(id)?.evict(`evicted (least recently used) to make room for ${descriptor.id}`);
          return t ? [t] : [];
        });
        await abortable(Promise.all(unloads), signal);
        continue;
      }
      if (plan.retry === "wait") {
        const transitions = [...this.runners.values()].flatMap((r) => (r.pendingTransition && r.backend.descriptor.id !== descriptor.id ? [r.pendingTransition.catch(() => undefined)] : []));
        if (transitions.length > 0) {
          await abortable(Promise.race(transitions), signal);
          continue;
        }
      }
      this.options.logger.warn({ model: descriptor.id, reason: plan.reason }, "load refused");
      throw new ServiceUnavailableError(`${plan.reason}.`, {
        code: plan.retry === "never" ? "memory_budget_exceeded" : "models_busy",
        headers: plan.retry === "never" ? {} : { "retry-after": "1" },
      });
    }
  }

  /** Loads models at start (config `preload`); failures are logged, not fatal. Aliases are accepted. */
  async preload(ids: readonly string[], signal: AbortSignal): Promise<void> {
    for (const id of ids) {
      const descriptor = this.lookup(id);
      if (!descriptor || descriptor.engine === null || !this.options.backends[descriptor.engine]) {
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

  /** Brings upstream model lists up to date (cached; an upstream that is down is reported, not fatal). */
  async refreshUpstreams(signal?: AbortSignal): Promise<void> {
    await this.options.upstreams?.refresh(signal);
  }

  /** Automatic restarts of each model's child process (engines that run one). */
  restartCounts(): { model: string; restarts: number }[] {
    return [...this.runners].flatMap(([model, runner]) => {
      const restarts = runner.backend.processStatus?.restarts;
      return restarts === undefined ? [] : [{ model, restarts }];
    });
  }

  upstreamStatus() {
    return this.options.upstreams?.status() ?? [];
  }

  private statusOf(descriptor: ModelDescriptor, shownAs = descriptor.id): ModelStatus {
    const s = this.runners.get(descriptor.id)?.status;
    const out: ModelStatus = { descriptor: shownAs === descriptor.id ? descriptor : { ...descriptor, id: shownAs }, state: s?.state ?? "unloaded", running: s?.running ?? 0, queued: s?.queued ?? 0 };
    if (shownAs !== descriptor.id) out.aliasOf = descriptor.id;
    return out;
  }

  private pendingStatus(id: string, p: PendingModel): ModelStatus {
    return { descriptor: { ...p.descriptor, id }, state: p.state, running: 0, queued: 0, download: { doneBytes: p.doneBytes, totalBytes: p.totalBytes, error: p.error } };
  }

  status(): ModelStatus[] {
    const local = this.options.registry.list();
    const remote = (this.options.upstreams?.list() ?? []).filter((d) => !this.options.registry.get(d.id));
    const out = [...local, ...remote].map((d) => this.statusOf(d));
    for (const [id, p] of this.pending) if (!this.options.registry.get(id)) out.push(this.pendingStatus(id, p));
    for (const alias of Object.keys(this.options.aliases ?? {}).sort()) {
      if (this.options.registry.get(alias) || this.pending.has(alias)) continue;
      const target = this.options.aliases![alias]!;
      const pending = this.pending.get(target);
      const d = this.lookup(alias);
      if (d) out.push({ ...this.statusOf(d, alias), aliasOf: target });
      else if (pending) out.push({ ...this.pendingStatus(alias, pending), aliasOf: target });
    }
    return out;
  }

  modelStatus(id: string): ModelStatus | undefined {
    const descriptor = this.lookup(id);
    if (descriptor) return this.statusOf(descriptor, id);
    const pending = this.pending.get(id) ?? this.pending.get(this.options.aliases?.[id] ?? "");
    return pending ? this.pendingStatus(id, pending) : undefined;
  }

  /** Refuses new requests, then unloads every model. Call after in-flight requests have drained. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.runners.values()].map((r) => r.close()));
  }
}
