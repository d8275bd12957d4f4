import type { Logger } from "pino";
import type { Backend, BackendFactory } from "../backends/Backend.js";
import type { Clock } from "../core/Clock.js";
import { InvalidRequestError, ModelNotFoundError, ServiceUnavailableError, WrongTaskError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import { ModelRunner, type Lease, type RunnerState } from "./ModelRunner.js";

export type Endpoint = "chat" | "completions" | "embeddings";

const ENDPOINT_PATH: Record<Endpoint, string> = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
  embeddings: "/v1/embeddings",
};

export interface ModelRouterOptions {
  registry: ModelRegistry;
  createBackend: BackendFactory;
  clock: Clock;
  logger: Logger;
  idleTtlMs: number;
  queueSize: number;
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

  constructor(private readonly options: ModelRouterOptions) {}

  get registry(): ModelRegistry {
    return this.options.registry;
  }

  resolve(modelId: string, endpoint: Endpoint): ModelDescriptor {
    const descriptor = this.options.registry.get(modelId);
    if (!descriptor) throw new ModelNotFoundError(modelId);
    const { task } = descriptor;
    const path = ENDPOINT_PATH[endpoint];
    if (endpoint === "embeddings" && task !== "embeddings") throw new WrongTaskError(modelId, task, path);
    if (endpoint !== "embeddings" && task === "embeddings") throw new WrongTaskError(modelId, "embeddings", path);
    if (endpoint === "chat" && task === "text-generation") {
      throw new InvalidRequestError(
        `The model '${modelId}' has no chat template in its GGUF file, so it cannot serve ${path}; use /v1/completions.`,
        { param: "model", code: "model_task_mismatch" },
      );
    }
    return descriptor;
  }

  /** Validates the model for the endpoint, waits for a slot and a loaded engine. Release the lease when done. */
  async acquire(modelId: string, endpoint: Endpoint, signal: AbortSignal): Promise<Lease> {
    const descriptor = this.resolve(modelId, endpoint);
    if (this.closing) throw new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" });
    return this.runnerFor(descriptor).acquire(signal);
  }

  private runnerFor(descriptor: ModelDescriptor): ModelRunner {
    let runner = this.runners.get(descriptor.id);
    if (!runner) {
      const backend: Backend = this.options.createBackend(descriptor);
      runner = new ModelRunner(backend, {
        idleTtlMs: this.options.idleTtlMs,
        queueSize: this.options.queueSize,
        clock: this.options.clock,
        logger: this.options.logger.child({ model: descriptor.id, backend: descriptor.backend }),
      });
      this.runners.set(descriptor.id, runner);
    }
    return runner;
  }

  status(): ModelStatus[] {
    return this.options.registry.list().map((descriptor) => {
      const s = this.runners.get(descriptor.id)?.status;
      return { descriptor, state: s?.state ?? "unloaded", running: s?.running ?? 0, queued: s?.queued ?? 0 };
    });
  }

  modelStatus(id: string): ModelStatus | undefined {
    return this.status().find((s) => s.descriptor.id === id);
  }

  /** Refuses new requests, then unloads every model. Call after in-flight requests have drained. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.runners.values()].map((r) => r.close()));
  }
}
