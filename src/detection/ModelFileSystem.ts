import { lstat, open, readdir, readlink, realpath } from "node:fs/promises";
import { basename, join, resolve, sep } from "node:path";
import { openFileByteSource, type ByteSource } from "./gguf/ByteSource.js";

export interface ModelFileEntry {
  /** Relative to the root, `/`-separated. */
  path: string;
  size: number;
}

/**
 * A model's files, wherever they live: a local folder or single file, or a Hugging Face repo read through
 * HTTP range requests. Detectors only ever read through this, so they work the same on both.
 */
export interface ModelFileSystem {
  /** A short description for messages: the folder path or `owner/name@rev`. */
  readonly label: string;
  /** Every file, recursively (bounded), sorted by path. */
  list(signal?: AbortSignal): Promise<ModelFileEntry[]>;
  /** Random access to one file. Throws if the path is not in `list()`. */
  open(path: string, signal?: AbortSignal): Promise<ByteSource>;
  /** A small text file (config.json, ...). Throws FileTooLargeError past `maxBytes`. */
  readText(path: string, maxBytes: number, signal?: AbortSignal): Promise<string>;
}

export class FileTooLargeError extends Error {
  constructor(path: string, size: number, maxBytes: number) {
    super(`${path} is ${size} bytes, more than the ${maxBytes} bytes allowed for this kind of file`);
    this.name = "FileTooLargeError";
  }
}

/**
 * A Hugging Face cache snapshot (`models--org--name/snapshots/<rev>/`) is made of symlinks into the repo's
 * `blobs/` folder: those links stay inside the repo folder, so they are allowed.
 */
export function hubCacheRepoRoot(real: string): string {
  const parts = real.split(sep);
  const i = parts.length - 3;
  if (i > 0 && parts[i + 1] === "snapshots" && parts[i]!.startsWith("models--")) return parts.slice(0, i + 1).join(sep);
  return real;
}

/**
 * Where the links of a folder may lead: the folder itself, and for a Hugging Face cache snapshot
 * (`models--org--name/snapshots/<rev>/`) its repo's `blobs/` folder.
 */
export function allowedLinkRoots(realFolder: string): string[] {
  const repo = hubCacheRepoRoot(realFolder);
  return repo === realFolder ? [realFolder] : [realFolder, join(repo, "blobs")];
}

/** True when `p` is `base` or lies under it (both real, absolute paths). */
export function isInside(p: string, base: string): boolean {
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
}

/** A symlink a listing did not follow, and why. */
export interface SkippedLink {
  /** Relative to the root, `/`-separated. */
  path: string;
  /** What the link says (readlink), when it can be read. */
  target: string | null;
  reason: "dangling" | "outside" | "loop";
}

export function describeSkippedLink(l: SkippedLink): string {
  const to = l.target === null ? "" : ` -> ${l.target}`;
  const why =
    l.reason === "dangling"
      ? "its target does not exist"
      : l.reason === "outside"
        ? "it points outside the allowed folders"
        : "it leads back into a folder already listed";
  return `symlink ${l.path}${to} skipped: ${why}`;
}

interface LocalModelFileSystemOptions {
  /** More real folders symlinks may lead into (a models folder: links between its entries are fine). */
  linkRoots?: string[];
}

/** Caps that keep a hostile folder from turning a listing into a crawl. */
const MAX_FILES = 10_000;
const MAX_DEPTH = 6;

/**
 * A local folder (or one file, when `root` is a file). Symlinks are followed only when their target stays inside
 * an allowed root (the folder, a snapshot's `blobs/`, the roots the caller adds), so a model folder cannot make
 * detection read files elsewhere; the others are listed in `skippedLinks`, for the caller to report.
 */
export class LocalModelFileSystem implements ModelFileSystem {
  /** Links the last `list()` did not follow. */
  readonly skippedLinks: SkippedLink[] = [];

  private constructor(
    readonly label: string,
    private readonly root: string,
    private readonly single: string | null,
    /** Real folders symlinks may lead into. */
    private readonly linkRoots: string[],
    /** The single file: its real path and size, from what `create` already resolved. */
    private readonly singleReal: string | null = null,
    private readonly singleSize: number | null = null,
  ) {}

  static async create(path: string, options: LocalModelFileSystemOptions = {}): Promise<LocalModelFileSystem> {
    const abs = resolve(path);
    const real = await realpath(abs);
    const st = await lstat(real);
    const extra = await Promise.all((options.linkRoots ?? []).map((r) => realpath(r).catch(() => resolve(r))));
    if (st.isFile()) {
      // A symlinked file keeps the name it was given (a snapshot's `model.onnx`, not its blob's hash): detectors
      // read meaning into names.
      const name = basename(abs);
      const dir = abs.slice(0, abs.length - name.length - 1) || sep;
      return new LocalModelFileSystem(abs, dir, name, extra, real, st.size);
    }
    if (!st.isDirectory()) throw new Error(`${path} is neither a file nor a folder`);
    return new LocalModelFileSystem(abs, real, null, [...allowedLinkRoots(real), ...extra]);
  }

  get isSingleFile(): boolean {
    return this.single !== null;
  }

  async list(): Promise<ModelFileEntry[]> {
    this.skippedLinks.length = 0;
    if (this.single) {
      return [{ path: this.single, size: this.singleSize ?? (await lstat(this.singleReal ?? join(this.root, this.single))).size }];
    }
    const out: ModelFileEntry[] = [];
    // Real folders being walked: a link back into one of them would list it again, forever (up to the caps).
    const walking = new Set<string>();
    const walk = async (dir: string, shown: string, depth: number): Promise<void> => {
      walking.add(dir);
      const entries = await readdir(dir, { withFileTypes: true });
      for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (out.length >= MAX_FILES) break;
        if (e.name.startsWith(".")) continue;
        const rel = shown === "" ? e.name : `${shown}/${e.name}`;
        let full = join(dir, e.name);
        if (e.isSymbolicLink()) {
          const target = await realpath(full).catch(() => null);
          const said = await readlink(full).catch(() => null);
          if (!target) {
            this.skippedLinks.push({ path: rel, target: said, reason: "dangling" });
            continue;
          }
          if (!this.inside(target)) {
            this.skippedLinks.push({ path: rel, target: said, reason: "outside" });
            continue;
          }
          full = target;
        }
        const st = await lstat(full);
        if (st.isDirectory() && depth < MAX_DEPTH) {
          if (walking.has(full)) this.skippedLinks.push({ path: rel, target: await readlink(join(dir, e.name)).catch(() => null), reason: "loop" });
          else await walk(full, rel, depth + 1);
        } else if (st.isFile()) out.push({ path: rel, size: st.size });
      }
      walking.delete(dir);
    };
    await walk(this.root, "", 0);
    return out;
  }

  private inside(p: string): boolean {
    return this.linkRoots.some((base) => isInside(p, base));
  }

  private async resolveInside(path: string): Promise<string> {
    if (this.single !== null && path !== this.single) throw new Error(`${path} is not part of ${this.label}`);
    // The single file was resolved by create(): no second realpath per open.
    if (this.single !== null) return this.singleReal ?? join(this.root, this.single);
    // Paths come from list(): each part of a listed path is a folder or a link allowed there.
    const full = await realpath(resolve(this.root, path));
    if (!this.inside(full)) throw new Error(`${path} resolves outside ${this.label}`);
    return full;
  }

  async open(path: string): Promise<ByteSource> {
    return openFileByteSource(await this.resolveInside(path));
  }

  async readText(path: string, maxBytes: number): Promise<string> {
    const full = await this.resolveInside(path);
    const handle = await open(full, "r");
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw new FileTooLargeError(path, size, maxBytes);
      const buf = Buffer.alloc(size);
      await handle.read(buf, 0, size, 0);
      return buf.toString("utf8");
    } finally {
      await handle.close();
    }
  }
}
