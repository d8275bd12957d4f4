import { relative, sep } from "node:path";
import type { Config } from "../config/configSchema.js";
import { parseHubSource } from "../detection/hub/parseHubSource.js";
import { describeLocalModels, type ModelRegistry } from "../registry/ModelRegistry.js";
import type { ModelOrigin } from "./DiscoveredModel.js";
import { InvalidPullSourceError } from "./errors.js";
import { pullModel, type PullEvent, type PullResult } from "./pullModel.js";
import { removeStoreModel } from "./removeStoreModel.js";
import { storeModelId } from "./storeModelId.js";
import { storeSettings } from "./storeSettings.js";

type Origins = Map<string, { origin: ModelOrigin; label: string; store?: { repo: string; commit: string; files: string[] | null } }>;

/**
 * Serves a pulled model at once, as discovery would have found it at the next start: the same id (storeModelId of
 * the snapshot-relative file) and origin `store`, so it may be deleted again. An id already served is left alone.
 */
async function registerPulled(result: PullResult, registry: ModelRegistry, origins: Origins, signal: AbortSignal): Promise<string | null> {
  if (result.id === null) return null;
  if (registry.get(result.id)) return result.id;
  for (const { descriptor, detection } of await describeLocalModels(result.snapshotDir, { signal })) {
    if (detection.format === "unknown") continue;
    const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
    const id = storeModelId(result.repo, isGguf ? relative(result.snapshotDir, descriptor.path).split(sep).join("/") : null);
    if (id !== result.id) continue;
    registry.add({ id, ...descriptor });
    origins.set(id, {
      origin: "store",
      label: `${result.repo}@${result.commit.slice(0, 12)}`,
      store: { repo: result.repo, commit: result.commit, files: isGguf ? detection.files.map((f) => f.path) : null },
    });
    return id;
  }
  return null;
}

/**
 * The store's side of the management API: the same pull and remove as `tabagent pull` and `tabagent rm`, with the
 * store folder, hub and token read from the config when each action runs, and pulled models served at once.
 */
export function storeActions(options: { config: Config; env: NodeJS.ProcessEnv; registry: ModelRegistry; origins: Origins }) {
  const { config, env, registry, origins } = options;
  return {
    checkSource(source: string): void {
      if (!parseHubSource(source)) throw new InvalidPullSourceError(`'${source.slice(0, 200)}' is not a Hugging Face model: use owner/name[@revision][:file-or-quant]`);
    },
    async pull(source: string, signal: AbortSignal, onEvent: (event: PullEvent) => void) {
      const result = await pullModel({ source, ...(await storeSettings(config, env)), signal, onEvent });
      const id = await registerPulled(result, registry, origins, signal);
      return {
        id,
        repo: result.repo,
        commit: result.commit,
        path: result.modelPath,
        fetchedBytes: result.fetchedBytes,
        resumedBytes: result.resumedBytes,
        seconds: result.seconds,
      };
    },
    async remove(location: { repo: string; commit: string; files: string[] | null }): Promise<{ freedBytes: number }> {
      const { storeDir } = await storeSettings(config, env);
      return removeStoreModel({ storeDir, ...location });
    },
  };
}
