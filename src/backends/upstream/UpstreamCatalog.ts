import type { Logger } from "pino";
import { UPSTREAM_PRESETS, type UpstreamConfig } from "../../config/configSchema.js";
import type { Clock } from "../../core/Clock.js";
import type { ModelDescriptor } from "../../core/types.js";
import type { Detection } from "../../core/detectionSchema.js";
import { OpenAIUpstream } from "../openaiHttp/OpenAIUpstream.js";

export interface UpstreamStatus {
  name: string;
  baseUrl: string;
  state: "up" | "down" | "unknown";
  models: string[];
  error: string | null;
  checkedAt: number | null;
}

interface Entry {
  config: UpstreamConfig;
  client: OpenAIUpstream;
  models: string[];
  error: string | null;
  checkedAt: number | null;
  refreshing: Promise<void> | null;
}

/**
 * The models that live on upstream servers. Their lists are fetched on demand and cached for `ttlMs`; an upstream
 * that is down is reported with its error, never fatal. Ids are `prefix + upstream id`.
 */
export class UpstreamCatalog {
  private readonly entries: Entry[];

  constructor(
    configs: UpstreamConfig[],
    private readonly options: { clock: Clock; logger: Logger; ttlMs?: number; fetch?: typeof fetch },
  ) {
    this.entries = configs.map((config) => ({
      config,
      client: new OpenAIUpstream({
        name: config.name,
        baseUrl: config.baseUrl ?? UPSTREAM_PRESETS[config.name]!,
        apiKey: config.apiKey,
        forwardUnknownFields: true,
        connectTimeoutMs: config.connectTimeoutMs,
        firstByteTimeoutMs: config.firstByteTimeoutMs,
        fetch: options.fetch,
      }),
      models: config.models ?? [],
      error: null,
      checkedAt: null,
      refreshing: null,
    }));
  }

  get size(): number {
    return this.entries.length;
  }

  client(name: string): OpenAIUpstream | undefined {
    return this.entries.find((e) => e.config.name === name)?.client;
  }

  parallel(name: string): number {
    return this.entries.find((e) => e.config.name === name)?.config.parallel ?? 16;
  }

  /** Refreshes lists older than the TTL (concurrent callers share one fetch per upstream). */
  async refresh(signal?: AbortSignal): Promise<void> {
    const ttl = this.options.ttlMs ?? 10_000;
    const now = this.options.clock.now();
    const pending: Promise<void>[] = [];
    for (const e of this.entries) {
      if (e.config.models) continue; // a fixed list needs no discovery
      if (e.checkedAt !== null && now - e.checkedAt < ttl) continue;
      e.refreshing ??= this.fetchList(e, signal).finally(() => (e.refreshing = null));
      pending.push(e.refreshing);
    }
    await Promise.all(pending);
  }

  private async fetchList(e: Entry, signal?: AbortSignal): Promise<void> {
    try {
      e.models = await e.client.listModels(signal ?? AbortSignal.timeout(e.config.connectTimeoutMs));
      e.error = null;
    } catch (err) {
      e.error = (err as Error).message;
      this.options.logger.warn({ upstream: e.config.name, err: e.error }, "upstream model list unavailable");
    }
    e.checkedAt = this.options.clock.now();
  }

  /** The upstream model behind `id`: by prefix, or by the cached list of an unprefixed upstream. */
  resolve(id: string): ModelDescriptor | undefined {
    for (const e of this.entries) {
      const { prefix } = e.config;
      if (prefix && id.startsWith(prefix) && id.length > prefix.length) return this.describe(e, id.slice(prefix.length));
      if (!prefix && e.models.includes(id)) return this.describe(e, id);
    }
    return undefined;
  }

  list(): ModelDescriptor[] {
    return this.entries.flatMap((e) => (e.error && !e.config.models ? [] : e.models.map((m) => this.describe(e, m))));
  }

  status(): UpstreamStatus[] {
    return this.entries.map((e) => ({
      name: e.config.name,
      baseUrl: e.client.target.baseUrl,
      state: e.config.models ? "unknown" : e.checkedAt === null ? "unknown" : e.error ? "down" : "up",
      models: e.models,
      error: e.error,
      checkedAt: e.checkedAt,
    }));
  }

  private describe(e: Entry, model: string): ModelDescriptor {
    const id = `${e.config.prefix}${model}`;
    const detection: Detection = {
      source: `${e.client.target.baseUrl}#${model}`,
      format: "unknown",
      task: "unknown",
      reason: `served by the upstream server '${e.config.name}'`,
      architecture: null,
      parameterCount: null,
      quantization: null,
      contextLength: null,
      hasChatTemplate: false,
      files: [],
      engine: { name: "upstream", reason: `proxied to ${e.client.target.baseUrl}` },
      alternatives: [],
      warnings: [],
      details: { upstream: e.config.name },
    };
    return { id, path: e.client.target.baseUrl, task: "unknown", engine: "upstream", detection, sizeBytes: 0, created: 0, upstream: { name: e.config.name, model } };
  }
}
