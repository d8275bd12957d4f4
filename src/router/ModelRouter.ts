import type { Logger } from "pino";
import type { Backend, BackendFactory } from "../backends/Backend.js";
import type { Clock } from "../core/Clock.js";
import {
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
}

export interface ModelStatus {
  descriptor: ModelDescriptor;
  state: RunnerState;
  running: number;
  queued: number;
}

/** Which model serves a request, and its lifecycle. Backends are created lazily, one per model. */
export class ModelRouter {
  private readonly runners = new Map<string, ModelRunner>();
  private closing = false;
  private inflight = 0;

  constructor(private readonly options: ModelRouterOptions) {}

  get registry(): ModelRegistry {
    return this.options.registry;
  }

  private lookup(modelId: string): ModelDescriptor | undefined {
    return this.options.registry.get(modelId) ?? this.options.upstreams?.resolve(modelId);
  }

  resolve(modelId: string, endpoint: Endpoint): ModelDescriptor {
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
    if (this.inflight >= limit) throw new ServerBusyError(limit);
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
        idleTtlMs: this.options.idleTtlMs,
        queueSize: this.options.queueSize,
        clock: this.options.clock,
        logger: this.options.logger.child({ model: descriptor.id, engine: descriptor.engine }),
        onLoad: (seconds) => this.options.onModelLoaded?.(descriptor.id, descriptor.engine, seconds),
      });
      this.runners.set(descriptor.id, runner);
    }
    return runner;
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

  status(): ModelStatus[] {
    const local = this.options.registry.list();
    const remote = (this.options.upstreams?.list() ?? []).filter((d) => !this.options.registry.get(d.id));
    return [...local, ...remote].map((descriptor) => {
      const s = this.runners.get(descriptor.id)?.status;
      return { descriptor, state: s?.state ?? "unloaded", running: s?.running ?? 0, queued: s?.queued ?? 0 };
    });
  }

  modelStatus(id: string): ModelStatus | undefined {
    const descriptor = this.lookup(id);
    if (!descriptor) return undefined;
    const s = this.runners.get(id)?.status;
    return { descriptor, state: s?.state ?? "unloaded", running: s?.running ?? 0, queued: s?.queued ?? 0 };
  }

  /** Refuses new requests, then unloads every model. Call after in-flight requests have drained. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.runners.values()].map((r) => r.close()));
  }
}
