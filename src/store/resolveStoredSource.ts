import { join } from "node:path";
import { LocalModelFileSystem } from "../detection/ModelFileSystem.js";
import { parseHubSource } from "../detection/hub/parseHubSource.js";
import { isProjectorFile } from "../detection/groupGgufFiles.js";
import { HubCacheLayout } from "./HubCacheLayout.js";
import { selectGgufFiles } from "./selectGgufFiles.js";

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * Where a hub source already lies in the store, without asking the hub (so `serve` starts offline): the snapshot its
 * revision's ref names, and in it the file or quantisation asked for (or the preferred one). Null when not there.
 */
export async function resolveStoredSource(storeDir: string, source: string): Promise<{ repo: string; commit: string; modelPath: string } | null> {
  const parsed = parseHubSource(source);
  if (!parsed) return null;
  const layout = await HubCacheLayout.openExisting(storeDir);
  if (!layout) return null;
  const commit = COMMIT.test(parsed.revision) ? parsed.revision : await layout.readRef(parsed.repo, parsed.revision);
  if (!commit) return null;
  const dir = layout.snapshotDir(parsed.repo, commit);
  const fs = await LocalModelFileSystem.create(dir).catch(() => null);
  if (!fs) return null;
  const files = await fs.list();
  const ggufs = files.filter((f) => /\.gguf$/i.test(f.path) && !isProjectorFile(f.path));
  const hfWeights = files.some((f) => /\.(safetensors|onnx)$/i.test(f.path));
  if (parsed.file === null && (ggufs.length === 0 || hfWeights)) return files.length > 0 ? { repo: parsed.repo, commit, modelPath: dir } : null;
  if (parsed.file !== null && files.some((f) => f.path === parsed.file) && !/\.gguf$/i.test(parsed.file))
    return { repo: parsed.repo, commit, modelPath: join(dir, parsed.file) };
  try {
    const choice = selectGgufFiles(files, parsed.file, parsed.repo);
    // Split models need every part in place.
    return { repo: parsed.repo, commit, modelPath: join(dir, choice.group.main.path) };
  } catch {
    return null;
  }
}
