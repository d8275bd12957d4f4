import type { RuntimeInfo } from "../backends/Backend.js";
import type { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import { ChatTemplateError, EngineUnavailableError, InvalidRequestError, ModelNotFoundError, ModelNotServableError, WrongTaskError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import type { EngineName } from "../core/detectionSchema.js";
import { ENGINES } from "../engines/engineTable.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import { ModelDownloadFailedError, ModelDownloadingError } from "../store/errors.js";
import type { RunnerState } from "./ModelRunner.js";

export type Endpoint = "chat" | "completions" | "embeddings" | "rerank";

const ENDPOINT_PATH: Record<Endpoint, string> = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
  embeddings: "/v1/embeddings",
  rerank: "/v1/rerank",
};

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
  /** What the loaded engine runs on (backend.runtimeInfo), when it says. */
  runtime?: RuntimeInfo;
}

/** What a loaded (or not yet loaded) model is doing; undefined for a model never used. */
export type UsageOf = (id: string) => { state: RunnerState; running: number; queued: number; runtime: RuntimeInfo | null } | undefined;

interface ModelCatalogOptions {
  registry: ModelRegistry;
  /** The engines this daemon can run (only the keys matter here). */
  backends: Partial<Record<EngineName, unknown>>;
  /** Models on upstream servers, after the local ones (a local id wins). */
  upstreams?: UpstreamCatalog;
  /** Other names for models: alias → model id. A model with the same id wins over an alias. */
  aliases?: Record<string, string>;
}

/** A request for a model still downloading: 503 with a Retry-After from the remaining bytes and the speed. */
export function downloadRefusal(id: string, p: PendingModel): Error {
  if (p.state === "download-failed") return new ModelDownloadFailedError(id, p.error ?? "unknown error");
  const left = Math.max(0, p.totalBytes - p.doneBytes);
  const eta = p.bytesPerSecond && p.bytesPerSecond > 0 ? left / p.bytesPerSecond : 30;
  const pct = p.totalBytes > 0 ? Math.floor((p.doneBytes / p.totalBytes) * 100) : 0;
  return new ModelDownloadingError(id, `${pct}% of ${p.totalBytes} bytes`, Math.min(300, Math.max(1, Math.ceil(eta))));
}

/**
 * Which model a name means: registry ids first, then aliases, then upstream servers, with models still being
 * pulled in between. Knows nothing of loading; `resolve` is the one check that a model can serve an endpoint.
 */
export class ModelCatalog {
  private readonly pending = new Map<string, PendingModel>();

  constructor(private readonly options: ModelCatalogOptions) {}

  get registry(): ModelRegistry {
    return this.options.registry;
  }

  /** Shows a model that is being pulled; requests for it answer 503 with Retry-After until `finishPending`. */
  setPending(id: string, model: PendingModel): void {
    this.pending.set(id, model);
  }

  /** The pull is done (the model is in the registry now) or abandoned. */
  finishPending(id: string): void {
    this.pending.delete(id);
  }

  lookup(modelId: string): ModelDescriptor | undefined {
    const { registry, aliases, upstreams } = this.options;
    const local = registry.get(modelId);
    if (local) return local;
    const target = aliases?.[modelId];
    if (target !== undefined && target !== modelId) {
      const aliased = registry.get(target);
      if (aliased) return aliased;
    }
    return upstreams?.resolve(target ?? modelId) ?? (target !== undefined ? upstreams?.resolve(modelId) : undefined);
  }

  /** An id nobody knows may be new on an upstream: refresh stale lists once before answering 404. */
  async refreshIfUnknown(modelId: string, signal: AbortSignal): Promise<void> {
    if (!this.lookup(modelId) && this.options.upstreams?.size) await this.options.upstreams.refresh(signal);
  }

  /** Brings upstream model lists up to date (cached; an upstream that is down is reported, not fatal). */
  async refreshUpstreams(signal?: AbortSignal): Promise<void> {
    await this.options.upstreams?.refresh(signal);
  }

  upstreamStatus() {
    return this.options.upstreams?.status() ?? [];
  }

  /** Whether this daemon has the engine `descriptor` needs (preload skips models it cannot run). */
  canRun(descriptor: ModelDescriptor): boolean {
    return descriptor.engine !== null && Boolean(this.options.backends[descriptor.engine]);
  }

  /** The descriptor serving `modelId` on `endpoint`, or the typed error that says why there is none. */
  resolve(modelId: string, endpoint: Endpoint): ModelDescriptor {
    const { registry, aliases, backends } = this.options;
    const pendingId = registry.get(modelId) ? undefined : this.pending.has(modelId) ? modelId : aliases?.[modelId];
    const pending = pendingId === undefined ? undefined : this.pending.get(pendingId);
    if (pending) throw downloadRefusal(pendingId!, pending);
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
      endpoint === "embeddings" || endpoint === "rerank"
        ? task === endpoint
        : endpoint === "chat"
          ? task === "chat" || task === "text-generation"
          : ["chat", "text-generation", "text2text"].includes(task);
    if (!fits) throw new WrongTaskError(modelId, task, path);
    if (endpoint === "chat" && task === "text-generation") {
      throw new InvalidRequestError(`The model '${modelId}' has no chat template, so it cannot serve ${path}; use /v1/completions.`, {
        param: "model",
        code: "model_task_mismatch",
      });
    }
    // Known bad (it hung or exhausted memory once): refused before it takes a slot or a load.
    if (endpoint === "chat" && descriptor.chatTemplateProblem) throw new ChatTemplateError(modelId, descriptor.chatTemplateProblem);
    if (!backends[descriptor.engine]) {
      throw new EngineUnavailableError(modelId, descriptor.engine, ENGINES[descriptor.engine].install);
    }
    return descriptor;
  }

  /** Every model: local, then upstream, then still downloading, then aliases (sorted), each with its usage. */
  status(usage: UsageOf): ModelStatus[] {
    const { registry, upstreams, aliases } = this.options;
    const local = registry.list();
    const remote = (upstreams?.list() ?? []).filter((d) => !registry.get(d.id));
    const out = [...local, ...remote].map((d) => this.statusOf(d, usage));
    for (const [id, p] of this.pending) if (!registry.get(id)) out.push(this.pendingStatus(id, p));
    for (const alias of Object.keys(aliases ?? {}).sort()) {
      if (registry.get(alias) || this.pending.has(alias)) continue;
      const target = aliases![alias]!;
      const pending = this.pending.get(target);
      const d = this.lookup(alias);
      if (d) out.push({ ...this.statusOf(d, usage, alias), aliasOf: target });
      else if (pending) out.push({ ...this.pendingStatus(alias, pending), aliasOf: target });
    }
    return out;
  }

  modelStatus(id: string, usage: UsageOf): ModelStatus | undefined {
    const descriptor = this.lookup(id);
    if (descriptor) return this.statusOf(descriptor, usage, id);
    const pending = this.pending.get(id) ?? this.pending.get(this.options.aliases?.[id] ?? "");
    return pending ? this.pendingStatus(id, pending) : undefined;
  }

  private statusOf(descriptor: ModelDescriptor, usage: UsageOf, shownAs = descriptor.id): ModelStatus {
    const s = usage(descriptor.id);
    const out: ModelStatus = {
      descriptor: shownAs === descriptor.id ? descriptor : { ...descriptor, id: shownAs },
      state: s?.state ?? "unloaded",
      running: s?.running ?? 0,
      queued: s?.queued ?? 0,
    };
    if (shownAs !== descriptor.id) out.aliasOf = descriptor.id;
    if (s?.runtime) out.runtime = s.runtime;
    return out;
  }

  private pendingStatus(id: string, p: PendingModel): ModelStatus {
    return { descriptor: { ...p.descriptor, id }, state: p.state, running: 0, queued: 0, download: { doneBytes: p.doneBytes, totalBytes: p.totalBytes, error: p.error } };
  }
}
