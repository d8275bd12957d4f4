import type { Config, ModelEntry } from "../config/configSchema.js";
import { defaultModelId } from "../registry/ModelRegistry.js";

export type ModelOverrides = Pick<ModelEntry, "contextSize" | "threads" | "parallel" | "gpuLayers" | "ttlSeconds" | "chatTemplate" | "preload">;

/**
 * Per-model settings from the config's model entries, by model id (the entry's id, or the id its path gives).
 * Anything an entry leaves out falls back to the daemon-wide setting of the same name.
 */
export function perModelSettings(config: Config): (id: string) => ModelOverrides | undefined {
  const byId = new Map<string, ModelOverrides>();
  for (const e of config.models) {
    const { contextSize, threads, parallel, gpuLayers, ttlSeconds, chatTemplate, preload } = e;
    byId.set(e.id ?? defaultModelId(e.path), { contextSize, threads, parallel, gpuLayers, ttlSeconds, chatTemplate, preload });
  }
  return (id) => byId.get(id);
}

/** Models to load at start: the top-level `preload` list and entries marked `preload: true`. */
export function preloadList(config: Config): string[] {
  const ids = new Set(config.preload);
  for (const e of config.models) if (e.preload) ids.add(e.id ?? defaultModelId(e.path));
  return [...ids];
}
