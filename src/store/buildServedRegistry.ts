import { resolve } from "node:path";
import type { Logger } from "pino";
import { HUB_SOURCE_PATH_PREFIX, type Config } from "../config/configSchema.js";
import type { ConfigError } from "../core/errors.js";
import { DetectionCache } from "../registry/DetectionCache.js";
import { ggufServingChoice, type GgufServingChoice } from "../engines/ggufServingEngine.js";
import { findLlamaServer } from "../native/findLlamaServer.js";
import { buildModelRegistry, ModelRegistry } from "../registry/ModelRegistry.js";
import { contentKey } from "./contentKey.js";
import { discoverLmStudioModels, findLmStudioDir } from "./discoverLmStudioModels.js";
import { discoverOllamaModels, findOllamaDir } from "./discoverOllamaModels.js";
import type { DiscoveredModel, ModelOrigin } from "./DiscoveredModel.js";
import { discoverStoreModels } from "./discoverStoreModels.js";
import { resolveStoreDir } from "./resolveStoreDir.js";

interface ServedModels {
  registry: ModelRegistry;
  /** Where each listed model comes from (`tabagent ls`'s SOURCE column; `rm` only touches `store`). */
  origins: Map<string, { origin: ModelOrigin; label: string; store?: DiscoveredModel["store"] }>;
}

/** Models found by each discovery source in the config, in its order. */
async function discoverModels(
  config: Config,
  env: NodeJS.ProcessEnv,
  options: { cache?: DetectionCache; logger?: Logger; signal?: AbortSignal } = {},
): Promise<DiscoveredModel[]> {
  const out: DiscoveredModel[] = [];
  for (const source of config.discover) {
    if (source === "store") out.push(...(await discoverStoreModels(resolveStoreDir(config.storeDir, env), options)));
    if (source === "lmstudio") {
      const dir = await findLmStudioDir(config.lmstudioDir, env);
      if (dir) out.push(...(await discoverLmStudioModels(dir, options)));
    }
    if (source === "ollama") {
      const dir = await findOllamaDir(config.ollamaDir, env);
      if (dir) out.push(...(await discoverOllamaModels(dir, options)));
    }
  }
  return out;
}

/** The `ggufEngine` setting on this machine: with `auto`, whether a standard llama-server binary is here. */
export async function resolveGgufServingChoice(config: Pick<Config, "ggufEngine">, env: NodeJS.ProcessEnv): Promise<GgufServingChoice | null> {
  if (config.ggufEngine === "node-llama-cpp") return ggufServingChoice("node-llama-cpp", null);
  const found = await findLlamaServer("standard", { env });
  return ggufServingChoice(config.ggufEngine, found.path === null ? null : { path: found.path, source: found.source });
}

/**
 * Everything the daemon serves, each once: configured models first (`models`, then `modelsDirs`), then what
 * discovery finds in the store, LM Studio's folder and Ollama's store. A discovered model whose id or weights
 * are already listed is skipped, so a file reachable from two places appears once with one stable id.
 */
export async function buildServedRegistry(options: {
  config: Config;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
  cache?: DetectionCache;
  signal?: AbortSignal;
  /** Collects the configured models' and folders' errors instead of throwing the first (see buildModelRegistry). */
  onError?: (err: ConfigError) => void;
}): Promise<ServedModels> {
  const { config, env, logger, signal, onError } = options;
  const cache = options.cache ?? new DetectionCache();
  const ggufChoice = await resolveGgufServingChoice(config, env);
  if (ggufChoice) logger?.debug({ engine: ggufChoice.engine, reason: ggufChoice.reason }, "GGUF serving engine");
  const registry = await buildModelRegistry(config, logger, { cache, signal, onError, ggufChoice });
  const origins: ServedModels["origins"] = new Map();
  const seen = new Set<string>();
  const configured = config.models.filter((m) => !m.path.startsWith(HUB_SOURCE_PATH_PREFIX)).map((m) => resolve(m.path));
  for (const d of registry.list()) {
    const fromEntry = configured.some((p) => d.path === p || d.path.startsWith(`${p}/`));
    origins.set(d.id, { origin: fromEntry ? "config" : "models-dir", label: d.path });
    seen.add(await contentKey(d.path));
  }
  const found = await discoverModels(config, env, { cache, logger, signal });
  const all = new ModelRegistry(registry.list(), ggufChoice);
  for (const m of found) {
    if (all.get(m.id) || seen.has(m.contentKey)) {
      logger?.debug({ id: m.id, origin: m.origin }, "discovered model already listed");
      continue;
    }
    seen.add(m.contentKey);
    all.add({ id: m.id, ...m.descriptor });
    origins.set(m.id, { origin: m.origin, label: m.label, ...(m.store ? { store: m.store } : {}) });
  }
  if (found.length > 0) logger?.info({ discovered: found.length, sources: config.discover }, "discovered models");
  return { registry: all, origins };
}
