import type { ModelFileSystem } from "../ModelFileSystem.js";

/** What a weights file's first bytes say it is; the extension is only a hint. */
export type WeightsMagic = "gguf" | "torch-zip" | "pickle" | "safetensors" | "unknown";

/** Enough bytes for every signature below (safetensors needs 9). */
export const WEIGHTS_MAGIC_BYTES = 16;

export function sniffWeightsMagic(head: Uint8Array): WeightsMagic {
  const [b0, b1, b2, b3] = head;
  if (head.length >= 4 && b0 === 0x47 && b1 === 0x47 && b2 === 0x55 && b3 === 0x46) return "gguf"; // "GGUF"
  // torch.save (since 1.6) writes a zip archive whose data.pkl is a pickle.
  if (head.length >= 4 && b0 === 0x50 && b1 === 0x4b && b2 === 0x03 && b3 === 0x04) return "torch-zip"; // "PK\3\4"
  // PROTO opcode then protocol 2..5: raw pickles and legacy (pre-zip) torch.save files.
  if (head.length >= 2 && b0 === 0x80 && b1 !== undefined && b1 >= 2 && b1 <= 5) return "pickle";
  // u64 little-endian header length (the top bytes are zero for any sane header), then '{'.
  if (head.length >= 9 && head[8] === 0x7b && head[5] === 0 && head[6] === 0 && head[7] === 0) return "safetensors";
  return "unknown";
}

export async function readWeightsMagic(fs: ModelFileSystem, path: string, signal?: AbortSignal): Promise<WeightsMagic> {
  const src = await fs.open(path, signal);
  try {
    if (src.size === 0) return "unknown";
    return sniffWeightsMagic(await src.read(0, Math.min(WEIGHTS_MAGIC_BYTES, src.size), signal));
  } finally {
    await src.close().catch(() => undefined);
  }
}
