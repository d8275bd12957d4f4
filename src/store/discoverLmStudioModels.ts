import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import type { Logger } from "pino";
import type { DetectionCache } from "../registry/DetectionCache.js";
import { describeLocalModels } from "../registry/ModelRegistry.js";
import { contentKey } from "./contentKey.js";
import type { DiscoveredModel } from "./DiscoveredModel.js";
import { storeModelId } from "./storeModelId.js";

/** LM Studio's models folder: the configured one, else ~/.lmstudio/models (0.3+), else ~/.cache/lm-studio/models. */
export async function findLmStudioDir(configured: string | undefined, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (configured) return resolve(configured);
  const home = env.HOME || homedir();
  for (const dir of [join(home, ".lmstudio", "models"), join(home, ".cache", "lm-studio", "models")]) {
    if ((await stat(dir).catch(() => null))?.isDirectory()) return dir;
  }
  return null;
}

/**
 * LM Studio keeps models as `publisher/repo/file.gguf`, mirroring hub repos, so they get the same ids as the hub
 * cache (`publisher--repo:QUANT`): a model present in both is listed once.
 */
export async function discoverLmStudioModels(root: string, options: { cache?: DetectionCache; logger?: Logger; signal?: AbortSignal } = {}): Promise<DiscoveredModel[]> {
  const out: DiscoveredModel[] = [];
  const publishers = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const p of publishers.filter((e) => e.isDirectory() && !e.name.startsWith(".")).sort((a, b) => a.name.localeCompare(b.name))) {
    const repos = await readdir(join(root, p.name), { withFileTypes: true }).catch(() => []);
    for (const r of repos.filter((e) => e.isDirectory() && !e.name.startsWith(".")).sort((a, b) => a.name.localeCompare(b.name))) {
      const dir = join(root, p.name, r.name);
      let found;
      try {
        found = await describeLocalModels(dir, { cache: options.cache, signal: options.signal });
      } catch (err) {
        options.logger?.warn({ path: dir, err: (err as Error).message }, "skipping LM Studio entry: not readable");
        continue;
      }
      for (const { descriptor, detection } of found) {
        if (detection.format === "unknown") continue;
        const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
        const id = storeModelId(`${p.name}/${r.name}`, isGguf ? relative(dir, descriptor.path).split(sep).join("/") : null);
        if (!id) continue;
        out.push({ id, origin: "lmstudio", label: `${p.name}/${r.name}`, descriptor, contentKey: await contentKey(descriptor.path) });
      }
    }
  }
  return out;
}
