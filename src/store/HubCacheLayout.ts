import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, readlink, realpath, rename, symlink, unlink, writeFile } from "node:fs/promises";
import { dirname, join, posix, relative, sep } from "node:path";
import { UnsafePathError } from "./errors.js";
import { isHexDigest, isSafeRepoPath, pathInside } from "./isSafeRepoPath.js";

const COMMIT = /^[0-9a-f]{40}$/;
const REPO_FOLDER = /^models--([A-Za-z0-9_.-]+)--([A-Za-z0-9_.-]+)$/;

/**
 * The Hugging Face hub cache layout, as huggingface_hub writes it:
 *
 *     <root>/models--owner--name/blobs/<etag>             file contents, named by sha256 (LFS) or git sha1
 *     <root>/models--owner--name/snapshots/<commit>/<file> relative symlinks into blobs/
 *     <root>/models--owner--name/refs/<revision>           the commit a branch or tag pointed to
 *
 * Every path is built from validated parts and checked to stay under the root; folders are created one level at
 * a time and must be real folders (a symlinked `blobs/` planted in the store would otherwise redirect writes).
 */
export class HubCacheLayout {
  private constructor(
    /** The store folder, symlinks resolved: the one place a link may lead to is under it. */
    readonly root: string,
  ) {}

  /** Creates the root when missing. */
  static async open(root: string): Promise<HubCacheLayout> {
    await mkdir(root, { recursive: true });
    return new HubCacheLayout(await realpath(root));
  }

  /** For reading a store that may not exist (listing, discovery): no folder is created. */
  static async openExisting(root: string): Promise<HubCacheLayout | null> {
    const real = await realpath(root).catch(() => null);
    return real ? new HubCacheLayout(real) : null;
  }

  static repoFolderName(repo: string): string {
    return `models--${repo.split("/").join("--")}`;
  }

  /** `models--owner--name` → `owner/name`; null for other folders (datasets--, .locks, junk). */
  static repoFromFolderName(name: string): string | null {
    const m = REPO_FOLDER.exec(name);
    return m ? `${m[1]}/${m[2]}` : null;
  }

  repoDir(repo: string): string {
    return pathInside(this.root, HubCacheLayout.repoFolderName(repo));
  }

  blobPath(repo: string, etag: string): string {
    if (!isHexDigest(etag)) throw new UnsafePathError(`refusing blob name '${etag.slice(0, 80)}': not a sha256 or git sha1`);
    return pathInside(this.root, join(HubCacheLayout.repoFolderName(repo), "blobs", etag));
  }

  snapshotDir(repo: string, commit: string): string {
    if (!COMMIT.test(commit)) throw new UnsafePathError(`refusing snapshot name '${commit.slice(0, 80)}': not a commit sha`);
    return pathInside(this.root, join(HubCacheLayout.repoFolderName(repo), "snapshots", commit));
  }

  snapshotFile(repo: string, commit: string, file: string): string {
    if (!isSafeRepoPath(file)) throw new UnsafePathError(`refusing file name '${file.slice(0, 200)}': it would escape the model folder`);
    return pathInside(this.snapshotDir(repo, commit), file);
  }

  refPath(repo: string, revision: string): string {
    if (!isSafeRepoPath(revision)) throw new UnsafePathError(`refusing revision '${revision.slice(0, 200)}'`);
    return pathInside(this.root, join(HubCacheLayout.repoFolderName(repo), "refs", revision));
  }

  /** Creates `path` (under the root) folder by folder, refusing any part that exists as a symlink or a file. */
  async ensureDir(path: string): Promise<void> {
    const rel = relative(this.root, path);
    if (rel.startsWith("..") || rel === "") {
      if (rel === "") return;
      throw new UnsafePathError(`refusing to create ${path}: outside the store ${this.root}`);
    }
    let current = this.root;
    for (const part of rel.split(sep)) {
      current = join(current, part);
      const st = await lstat(current).catch(() => null);
      if (!st) {
        await mkdir(current).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "EEXIST") throw err;
        });
        continue;
      }
      if (st.isSymbolicLink()) throw new UnsafePathError(`refusing to write through ${current}: it is a symlink (the store must not lead elsewhere)`);
      if (!st.isDirectory()) throw new UnsafePathError(`refusing to write under ${current}: it is not a folder`);
    }
  }

  /** The commit a branch or tag points to, as last pulled; null when unknown. */
  async readRef(repo: string, revision: string): Promise<string | null> {
    const text = await readFile(this.refPath(repo, revision), "utf8").catch(() => null);
    const commit = text?.trim() ?? "";
    return COMMIT.test(commit) ? commit : null;
  }

  async writeRef(repo: string, revision: string, commit: string): Promise<void> {
    if (!COMMIT.test(commit)) throw new UnsafePathError(`refusing ref to '${commit.slice(0, 80)}': not a commit sha`);
    const path = this.refPath(repo, revision);
    await this.ensureDir(dirname(path));
    await this.replaceAtomically(path, (tmp) => writeFile(tmp, commit, { flag: "wx" }));
  }

  /**
   * Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative link, as huggingface_hub does (so the
   * cache can be moved). An existing entry is replaced by rename, never written through.
   */
  async linkSnapshot(repo: string, commit: string, file: string, etag: string): Promise<string> {
    const link = this.snapshotFile(repo, commit, file);
    const blob = this.blobPath(repo, etag);
    await this.ensureDir(dirname(link));
    const target = relative(dirname(link), blob).split(sep).join(posix.sep);
    const existing = await readlink(link).catch(() => null);
    if (existing === target) return link;
    await this.replaceAtomically(link, (tmp) => symlink(target, tmp));
    return link;
  }

  private async replaceAtomically(path: string, create: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    await create(tmp);
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}
