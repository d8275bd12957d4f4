import type { ByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { FileTooLargeError, type ModelFileEntry, type ModelFileSystem } from "../../../src/detection/ModelFileSystem.js";

/** File contents: bytes, or a sparse file of `size` bytes that holds `parts` and zeros elsewhere. */
export type MemoryFile = Uint8Array | string | { size: number; parts: { offset: number; bytes: Uint8Array }[] };

export interface ReadStats {
  reads: number;
  bytesRead: number;
  perFile: Map<string, number>;
}

function sizeOf(f: MemoryFile): number {
  if (typeof f === "string") return Buffer.byteLength(f);
  return f instanceof Uint8Array ? f.length : f.size;
}

function slice(f: MemoryFile, offset: number, length: number): Uint8Array {
  if (typeof f === "string") return Buffer.from(f).subarray(offset, offset + length);
  if (f instanceof Uint8Array) return f.subarray(offset, Math.min(f.length, offset + length));
  const end = Math.min(f.size, offset + length);
  const out = new Uint8Array(Math.max(0, end - offset));
  for (const p of f.parts) {
    const from = Math.max(offset, p.offset);
    const to = Math.min(end, p.offset + p.bytes.length);
    if (from < to) out.set(p.bytes.subarray(from - p.offset, to - p.offset), from - offset);
  }
  return out;
}

export function memorySource(f: MemoryFile, stats?: ReadStats, path = ""): ByteSource {
  const size = sizeOf(f);
  return {
    size,
    async read(offset, length) {
      const out = slice(f, offset, length);
      if (stats) {
        stats.reads++;
        stats.bytesRead += out.length;
        stats.perFile.set(path, (stats.perFile.get(path) ?? 0) + out.length);
      }
      return out;
    },
    async close() {},
  };
}

/** An in-memory model folder (a stand-in for a remote repo) that counts every byte read. */
export class MemoryModelFileSystem implements ModelFileSystem {
  readonly label = "memory";
  readonly stats: ReadStats = { reads: 0, bytesRead: 0, perFile: new Map() };
  constructor(private readonly files: Record<string, MemoryFile>) {}

  async list(): Promise<ModelFileEntry[]> {
    return Object.entries(this.files)
      .map(([path, f]) => ({ path, size: sizeOf(f) }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  async open(path: string): Promise<ByteSource> {
    const f = this.files[path];
    if (f === undefined) throw new Error(`${path} is not in the listing`);
    return memorySource(f, this.stats, path);
  }

  async readText(path: string, maxBytes: number): Promise<string> {
    const f = this.files[path];
    if (f === undefined) throw new Error(`${path} is not in the listing`);
    const size = sizeOf(f);
    if (size > maxBytes) throw new FileTooLargeError(path, size, maxBytes);
    const bytes = slice(f, 0, size);
    this.stats.reads++;
    this.stats.bytesRead += bytes.length;
    return Buffer.from(bytes).toString("utf8");
  }
}

/** A seeded PRNG (mulberry32) for reproducible fuzz cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
