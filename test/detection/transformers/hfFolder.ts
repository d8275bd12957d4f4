import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { ByteSource } from "../../../src/detection/gguf/ByteSource.js";
import type { ModelFileSystem } from "../../../src/detection/ModelFileSystem.js";

/** File contents: text as is, bytes as is, anything else as JSON; undefined leaves the file out. */
export type FolderSpec = Record<string, string | Uint8Array | object | undefined>;

/** A model folder written under `parent` (a fresh temp folder when omitted). */
export async function makeFolder(files: FolderSpec, parent?: string): Promise<string> {
  const dir = await mkdtemp(join(parent ?? tmpdir(), "hf-"));
  for (const [path, content] of Object.entries(files)) {
    if (content === undefined) continue;
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, typeof content === "string" || content instanceof Uint8Array ? content : JSON.stringify(content));
  }
  return dir;
}

export interface RecordingFs extends ModelFileSystem {
  opened: string[];
  texts: string[];
  /** Bytes returned by every ranged read and text read together. */
  bytesRead: number;
}

/** Wraps a file system to see which files detection touched and how many bytes it pulled. */
export function recordingFs(inner: ModelFileSystem): RecordingFs {
  const fs: RecordingFs = {
    label: inner.label,
    opened: [],
    texts: [],
    bytesRead: 0,
    list: (signal) => inner.list(signal),
    async open(path, signal) {
      fs.opened.push(path);
      const src = await inner.open(path, signal);
      const wrapped: ByteSource = {
        size: src.size,
        async read(offset, length, s) {
          const out = await src.read(offset, length, s);
          fs.bytesRead += out.length;
          return out;
        },
        close: () => src.close(),
      };
      return wrapped;
    },
    async readText(path, maxBytes, signal) {
      fs.texts.push(path);
      const text = await inner.readText(path, maxBytes, signal);
      fs.bytesRead += Buffer.byteLength(text);
      return text;
    },
  };
  return fs;
}

/** The first bytes of a torch.save zip archive and of a raw protocol-2 pickle. */
export const TORCH_ZIP = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x08, ...new Array(56).fill(0)]);
export const RAW_PICKLE = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
/** A GGUF v3 header start (magic, version, zero tensors, zero metadata). */
export const GGUF_BYTES = Uint8Array.from([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, ...new Array(16).fill(0)]);
