import { posix } from "node:path";
import type { ModelFileEntry } from "../ModelFileSystem.js";

export interface OnnxFileName {
  path: string;
  size: number;
  /** Folder relative to the root (`""` at the root). */
  dir: string;
  /** The graph's role without precision suffix: `model`, `decoder_model_merged`, `encoder_model`, ... */
  component: string;
  /** From the name's suffix (`_quantized` → `int8`, `_fp16`, `_q4`, ...); null for a plain name. */
  quantization: string | null;
}

/** transformers.js / optimum precision suffixes, longest first so `_q4f16` wins over `_fp16`. */
const SUFFIXES: [string, string][] = [
  ["_quantized", "int8"],
  ["_q4f16", "q4f16"],
  ["_bnb4", "bnb4"],
  ["_uint8", "uint8"],
  ["_int8", "int8"],
  ["_int4", "int4"],
  ["_fp16", "fp16"],
  ["_fp32", "fp32"],
  ["_bf16", "bf16"],
  ["_q8", "int8"],
  ["_q4", "q4"],
];

export const ONNX_EXTERNAL_DATA = /\.onnx[._]data(?:_\d+)?$/i;

export function isOnnxFile(path: string): boolean {
  return path.toLowerCase().endsWith(".onnx");
}

export function parseOnnxFileName(file: ModelFileEntry): OnnxFileName {
  const dir = posix.dirname(file.path) === "." ? "" : posix.dirname(file.path);
  const stem = posix.basename(file.path).replace(/\.onnx$/i, "");
  for (const [suffix, quantization] of SUFFIXES) {
    if (stem.toLowerCase().endsWith(suffix) && stem.length > suffix.length) {
      return { path: file.path, size: file.size, dir, component: stem.slice(0, -suffix.length), quantization };
    }
  }
  return { path: file.path, size: file.size, dir, component: stem, quantization: null };
}

/** onnxruntime-genai folders carry the precision in the folder name (`cpu-int4-rtn-block-32`, `cuda-fp16`). */
export function quantizationFromFolder(dir: string): string | null {
  const m = /(?:^|[-_/])(int4|int8|fp16|fp32|bf16|q4)(?=[-_/]|$)/i.exec(dir);
  return m ? m[1]!.toLowerCase() : null;
}

const COMPONENT_RANK: Record<string, number> = {
  model: 0,
  decoder_model_merged: 1,
  decoder_with_past_model: 2,
  decoder_model: 3,
  encoder_model: 5,
};
const QUANT_RANK: Record<string, number> = { fp16: 1, int8: 2, uint8: 3, q4: 4, q4f16: 5, bnb4: 6 };

/**
 * The graph to describe: the shallowest folder, then the whole model or the decoder (it carries the KV-cache
 * inputs that tell a generator), then full precision, which every engine runs.
 */
export function choosePrimaryOnnx(files: OnnxFileName[]): OnnxFileName | null {
  const depth = (f: OnnxFileName): number => (f.dir === "" ? 0 : f.dir.split("/").length);
  const sorted = [...files].sort(
    (a, b) =>
      depth(a) - depth(b) ||
      (COMPONENT_RANK[a.component] ?? 4) - (COMPONENT_RANK[b.component] ?? 4) ||
      (a.quantization === null ? 0 : (QUANT_RANK[a.quantization] ?? 7)) - (b.quantization === null ? 0 : (QUANT_RANK[b.quantization] ?? 7)) ||
      a.path.localeCompare(b.path),
  );
  return sorted[0] ?? null;
}

type ExternalLocationCheck = { safe: true; path: string } | { safe: false; why: string };

/**
 * Where an external_data `location` points, relative to the model file's folder. Absolute paths, drive letters
 * and `..` segments are refused outright: onnxruntime would read them, and a model must not reach outside its
 * folder.
 */
export function resolveExternalLocation(modelPath: string, location: string): ExternalLocationCheck {
  if (location === "") return { safe: false, why: "empty location" };
  if (location.includes("\0")) return { safe: false, why: "NUL byte in location" };
  if (/^[\\/]/.test(location) || /^[A-Za-z]:/.test(location)) return { safe: false, why: "absolute path" };
  const parts = location.split(/[\\/]+/).filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return { safe: false, why: "'..' leaves the model folder" };
  if (parts.length === 0) return { safe: false, why: "empty location" };
  const dir = posix.dirname(modelPath);
  return { safe: true, path: dir === "." ? parts.join("/") : `${dir}/${parts.join("/")}` };
}
