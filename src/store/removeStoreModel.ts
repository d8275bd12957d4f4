import { lstat, readdir, readFile, readlink, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { isProjectorFile } from "../detection/groupGgufFiles.js";
import { StoreRefusalError } from "./errors.js";
import { HubCacheLayout } from "./HubCacheLayout.js";
import { isHexDigest } from "./isSafeRepoPath.js";

interface RemoveResult {
  removedLinks: number;
  removedBlobs: number;
  freedBytes: number;
}

/** Every entry of a snapshot folder, relative (links and files, never followed). */
async function snapshotEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else out.push(relative(dir, full));
    }
  };
  await walk(dir);
  return out;
}

/** The blob a snapshot link points to, when it points into this repo's `blobs/` (else null: never touched). */
async function blobOf(layout: HubCacheLayout, repo: string, link: string): Promise<string | null> {
  const target = await readlink(link).catch(() => null);
  if (target === null) return null;
  const full = resolve(dirname(link), target);
  const blobs = join(layout.repoDir(repo), "blobs");
  if (dirname(full) !== blobs || !isHexDigest(basename(full))) return null;
  return layout.blobPath(repo, basename(full));
}

async function removeEmptyDirs(from: string, upTo: string): Promise<void> {
  for (let d = from; d.startsWith(upTo + sep) || d === upTo; d = dirname(d)) {
    if ((await readdir(d).catch(() => ["x"])).length > 0) return;
    await rmdir(d).catch(() => undefined);
    if (d === upTo) return;
  }
}

/**
 * Removes one model from the store: its snapshot entries (links are unlinked, never followed), then each blob no
 * other snapshot of the repo still points to. Only paths under the store are touched; a link that leads elsewhere
 * is removed as a link and its target left alone. `files` null removes the whole snapshot (a non-GGUF model).
 */
export async function removeStoreModel(options: { storeDir: string; repo: string; commit: string; files: string[] | null }): Promise<RemoveResult> {
  const layout = await HubCacheLayout.openExisting(options.storeDir);
  if (!layout) throw new StoreRefusalError(`no store at ${options.storeDir}`);
  const { repo, commit } = options;
  const snapshot = layout.snapshotDir(repo, commit);
  const all = await snapshotEntries(snapshot);
  let targets = options.files === null ? all : options.files.filter((f) => all.includes(f.split("/").join(sep)));
  // A vision projector shared by several quantisations stays while another model file still uses it.
  const remaining = all.filter((f) => !targets.includes(f) && /\.gguf$/i.test(f) && !isProjectorFile(f));
  if (remaining.length > 0) targets = targets.filter((f) => !isProjectorFile(f));
  const result: RemoveResult = { removedLinks: 0, removedBlobs: 0, freedBytes: 0 };
  const blobs = new Set<string>();
  const emptied = new Set<string>([snapshot]);
  for (const rel of targets) {
    const path = layout.snapshotFile(repo, commit, rel.split(sep).join("/"));
    const st = await lstat(path).catch(() => null);
    if (!st) continue;
    if (st.isSymbolicLink()) {
      const blob = await blobOf(layout, repo, path);
      if (blob) blobs.add(blob);
    } else if (st.isFile()) {
      result.freedBytes += st.size; // a real file in a snapshot (Windows-style copy): the store's own
    }
    await unlink(path);
    result.removedLinks++;
    emptied.add(dirname(path));
  }
  // A blob another snapshot entry (any revision) still points to stays.
  const stillUsed = new Set<string>();
  const snapshots = join(layout.repoDir(repo), "snapshots");
  for (const c of await readdir(snapshots).catch(() => [] as string[])) {
    for (const rel of await snapshotEntries(join(snapshots, c))) {
      const blob = await blobOf(layout, repo, join(snapshots, c, rel));
      if (blob) stillUsed.add(blob);
    }
  }
  for (const blob of blobs) {
    if (stillUsed.has(blob)) continue;
    const st = await lstat(blob).catch(() => null);
    if (!st?.isFile()) continue;
    await unlink(blob);
    result.removedBlobs++;
    result.freedBytes += st.size;
  }
  // Deepest first: a file in a subfolder (onnx/model.onnx) leaves that folder empty, and the snapshot with it.
  for (const d of [...emptied].sort((a, b) => b.length - a.length)) await removeEmptyDirs(d, snapshots);
  if ((await readdir(snapshots).catch(() => [] as string[])).length === 0) {
    // Nothing left of the repo: its refs and stray partial downloads go too, then the folders.
    const refs = join(layout.repoDir(repo), "refs");
    for (const ref of await snapshotEntries(refs)) {
      const text = await readFile(join(refs, ref), "utf8").catch(() => "");
      if (text.trim() === commit || text.trim() === "") await unlink(join(refs, ref)).catch(() => undefined);
    }
    const blobDir = join(layout.repoDir(repo), "blobs");
    for (const name of await readdir(blobDir).catch(() => [] as string[])) {
      if (/^[0-9a-f]{40,64}(\.incomplete)?$/.test(name) && !stillUsed.has(join(blobDir, name))) {
        const st = await lstat(join(blobDir, name)).catch(() => null);
        if (st?.isFile()) {
          await unlink(join(blobDir, name));
          if (!name.endsWith(".incomplete")) result.removedBlobs++;
          result.freedBytes += st.size;
        }
      }
    }
    for (const d of [refs, blobDir, snapshots, layout.repoDir(repo)]) await removeEmptyDirs(d, layout.repoDir(repo)).catch(() => undefined);
    await rmdir(layout.repoDir(repo)).catch(() => undefined);
  }
  return result;
}
