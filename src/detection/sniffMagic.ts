import type { ModelFileSystem } from "./ModelFileSystem.js";
import { WEIGHTS_MAGIC_BYTES, sniffWeightsMagic } from "./transformers/sniffWeightsMagic.js";

type Magic = "gguf" | "tflite" | "zip" | "pickle" | "safetensors" | "none";

/**
 * What the first bytes say a file is. Magic bytes win over extensions. ONNX (plain protobuf) has no magic, so it
 * is recognised by its detector instead.
 */
export async function sniffMagic(fs: ModelFileSystem, path: string, signal?: AbortSignal): Promise<Magic> {
  const src = await fs.open(path, signal);
  try {
    return magicOf(await src.read(0, Math.min(WEIGHTS_MAGIC_BYTES, src.size), signal));
  } finally {
    await src.close();
  }
}

function magicOf(head: Uint8Array): Magic {
  // A TFLite FlatBuffer carries its file identifier at offset 4.
  if (head.length >= 8 && String.fromCharCode(...head.subarray(4, 8)) === "TFL3") return "tflite";
  const weights = sniffWeightsMagic(head);
  return weights === "torch-zip" ? "zip" : weights === "unknown" ? "none" : weights;
}
