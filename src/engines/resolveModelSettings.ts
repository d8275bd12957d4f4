import type { Config, ModelEntry } from "../config/configSchema.js";
import { defaultModelId } from "../registry/ModelRegistry.js";

const idOf = (e: ModelEntry) => e.id ?? defaultModelId(e.path);

/** The settings a model runs with: its config entry's, else the daemon-wide ones of the same name. */
export interface ModelSettings {
  threads: number;
  contextSize: number;
  parallel: number;
  gpuLayers: Config["gpuLayers"];
  /** Idle seconds before unload; undefined = the daemon's idleTtlSeconds. */
  ttlSeconds: number | undefined;
  /** A Jinja chat template used instead of the model's own. */
  chatTemplate: string | undefined;
}

/**
 * Settings by model id, from the config's model entries (by the entry's id, or the id its path gives) over the
 * daemon-wide settings. The one place a per-model override is resolved.
 */
export function resolveModelSettings(config: Config): (id: string) => ModelSettings {
  const byId = new Map<string, ModelEntry>();
  for (const e of config.models) byId.set(idOf(e), e);
  return (id) => {
    const own = byId.get(id);
    return {
      threads: own?.threads ?? config.threads,
      contextSize: own?.contextSize ?? config.contextSize,
      parallel: own?.parallel ?? config.parallel,
      gpuLayers: own?.gpuLayers ?? config.gpuLayers,
      ttlSeconds: own?.ttlSeconds,
      chatTemplate: own?.chatTemplate,
    };
  };
}

/** Models to load at start: the top-level `preload` list and entries marked `preload: true`. */
export function preloadList(config: Config): string[] {
  const ids = new Set(config.preload);
  for (const e of config.models) if (e.preload) ids.add(idOf(e));
  return [...ids];
}
