import { lstat, open, readdir, realpath } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
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

/** Caps that keep a hostile folder from turning a listing into a crawl. */
const MAX_FILES = 10_000;
const MAX_DEPTH = 6;

/**
 * A local folder (or one file, when `root` is a file). Symlinks are followed only when they stay inside the root,
 * so a model folder cannot make detection read files elsewhere.
 */
export class LocalModelFileSystem implements ModelFileSystem {
  private constructor(
    readonly label: string,
    private readonly root: string,
    private readonly single: string | null,
    /** Where symlinks may point: the root, or a Hugging Face cache repo folder for one of its snapshots. */
    private readonly linkRoot: string = root,
    /** The single file's size, from the lstat `create` already made. */
    private readonly singleSize: number | null = null,
  ) {}

  static async create(path: string): Promise<LocalModelFileSystem> {
    const abs = resolve(path);
    const real = await realpath(abs);
    const st = await lstat(real);
    if (st.isFile()) {
      const name = real.split(sep).pop()!;
      return new LocalModelFileSystem(abs, real.slice(0, real.length - name.length - 1) || sep, name, undefined, st.size);
    }
    if (!st.isDirectory()) throw new Error(`${path} is neither a file nor a folder`);
    return new LocalModelFileSystem(abs, real, null, hubCacheRepoRoot(real));
  }

  get isSingleFile(): boolean {
    return this.single !== null;
  }

  async list(): Promise<ModelFileEntry[]> {
    if (this.single) {
      return [{ path: this.single, size: this.singleSize ?? (await lstat(join(this.root, this.single))).size }];
    }
    const out: ModelFileEntry[] = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true });
      for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (out.length >= MAX_FILES) return;
        if (e.name.startsWith(".")) continue;
        let full = join(dir, e.name);
        if (e.isSymbolicLink()) {
          const target = await realpath(full).catch(() => null);
          if (!target || !this.inside(target)) continue;
          full = target;
        }
        const st = await lstat(full);
        if (st.isDirectory() && depth < MAX_DEPTH) await walk(full, depth + 1);
        else if (st.isFile()) out.push({ path: relative(this.root, join(dir, e.name)).split(sep).join("/"), size: st.size });
      }
    };
    await walk(this.root, 0);
    return out;
  }

  private inside(p: string): boolean {
    const base = this.linkRoot;
    return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
  }

  private async resolveInside(path: string): Promise<string> {
    if (this.single !== null && path !== this.single) throw new Error(`${path} is not part of ${this.label}`);
    // The single file was resolved by create(): no second realpath per open.
    if (this.single !== null) return join(this.root, this.single);
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
