import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { Logger } from "pino";
import type { DetectionCache } from "../registry/DetectionCache.js";
import { describeLocalModels } from "../registry/ModelRegistry.js";
import { contentKey } from "./contentKey.js";
import type { DiscoveredModel } from "./DiscoveredModel.js";
import { HubCacheLayout } from "./HubCacheLayout.js";
import { storeModelId } from "./storeModelId.js";

const COMMIT = /^[0-9a-f]{40}$/;

/** The snapshot a repo is served from: the one `refs/main` names, else the most recently written one. */
async function currentSnapshot(layout: HubCacheLayout, repo: string): Promise<string | null> {
  const fromRef = await layout.readRef(repo, "main");
  const snapshots = join(layout.repoDir(repo), "snapshots");
  const names = (await readdir(snapshots).catch(() => [] as string[])).filter((n) => COMMIT.test(n));
  if (fromRef && names.includes(fromRef)) return fromRef;
  let best: { name: string; mtime: number } | null = null;
  for (const name of names) {
    const st = await stat(join(snapshots, name)).catch(() => null);
    if (st?.isDirectory() && (!best || st.mtimeMs > best.mtime)) best = { name, mtime: st.mtimeMs };
  }
  return best?.name ?? null;
}

/**
 * Models in the store (the Hugging Face hub cache, whoever filled it: `tabagent pull`, transformers,
 * huggingface-cli): one per GGUF model file of a snapshot, or one per snapshot of another format.
 */
export async function discoverStoreModels(storeDir: string, options: { cache?: DetectionCache; logger?: Logger; signal?: AbortSignal } = {}): Promise<DiscoveredModel[]> {
  const layout = await HubCacheLayout.openExisting(storeDir);
  if (!layout) return [];
  const out: DiscoveredModel[] = [];
  const folders = (await readdir(layout.root).catch(() => [] as string[])).sort();
  for (const folder of folders) {
    const repo = HubCacheLayout.repoFromFolderName(folder);
    if (!repo) continue;
    const commit = await currentSnapshot(layout, repo);
    if (!commit) continue;
    const dir = layout.snapshotDir(repo, commit);
    let found;
    try {
      found = await describeLocalModels(dir, { cache: options.cache, signal: options.signal });
    } catch (err) {
      options.logger?.warn({ repo, err: (err as Error).message }, "skipping store entry: not readable");
      continue;
    }
    for (const { descriptor, detection } of found) {
      if (detection.format === "unknown") continue;
      const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
      const id = storeModelId(repo, isGguf ? relative(dir, descriptor.path).split(sep).join("/") : null);
      if (!id) {
        options.logger?.warn({ repo }, "skipping store entry: its name does not make a valid model id");
        continue;
      }
      out.push({
        id,
        origin: "store",
        label: `${repo}@${commit.slice(0, 12)}`,
        descriptor,
        contentKey: await contentKey(descriptor.path),
        store: { repo, commit, files: isGguf ? detection.files.map((f) => f.path) : null },
      });
    }
  }
  return out;
}
