import { MAINLINE_GGML_BLOCKS } from "../detection/gguf/ggmlTypes.js";
import type { GgufHeader, GgufValue } from "../detection/gguf/readGgufHeader.js";
import type { GpuReport } from "./queryGpus.js";

/** What one GGUF model costs on a GPU, layer by layer, read from its header. */
export interface GgufLayerSizes {
  /** Repeating blocks (`<arch>.block_count`). */
  layers: number;
  /** Weight bytes of each block (`blk.N.*` tensors). */
  layerWeightBytes: number[];
  /** Everything outside the blocks that llama.cpp offloads with the last "layer" (output, output_norm). */
  outputBytes: number;
  /** K + V cache bytes per block per token (f16, llama.cpp's default cache type). */
  kvBytesPerLayerToken: number;
}

/** The chosen `--n-gpu-layers` / `gpuLayers` and why. */
export interface GpuLayerFit {
  gpuLayers: number;
  /** One line for /v1/models and the log. */
  reason: string;
  /** Bytes this choice puts in VRAM (weights + KV cache), for the memory budget. */
  vramBytes: number;
}

/** Left free for llama.cpp's compute buffers, the CUDA context and other processes: 512 MiB plus 5 % of free. */
export const FIT_MARGIN_BYTES = 512 * 1024 * 1024;
export const FIT_MARGIN_FRACTION = 0.05;

const F16 = 2;

function num(v: GgufValue | undefined): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return null;
}

/** Bytes of one tensor from its ggml type's block layout; null for a type mainline ggml does not define. */
function tensorBytes(type: number, dims: readonly number[]): number | null {
  const block = MAINLINE_GGML_BLOCKS[type];
  if (!block) return null;
  const elements = dims.reduce((a, b) => a * b, 1);
  return (elements / block[0]) * block[1];
}

/** Per-layer weight and KV-cache sizes from a GGUF header; an error string where the header cannot tell. */
export function ggufLayerSizes(header: GgufHeader): GgufLayerSizes | { error: string } {
  const md = header.metadata;
  const arch = md.get("general.architecture");
  if (typeof arch !== "string") return { error: "the GGUF header names no general.architecture" };
  const layers = num(md.get(`${arch}.block_count`));
  if (layers === null || layers < 1) return { error: `the GGUF header has no ${arch}.block_count` };
  const embd = num(md.get(`${arch}.embedding_length`));
  const heads = num(md.get(`${arch}.attention.head_count`));
  const kvHeads = num(md.get(`${arch}.attention.head_count_kv`)) ?? heads;
  if (embd === null || heads === null || kvHeads === null || heads < 1) return { error: `the GGUF header lacks ${arch}'s embedding_length or head counts` };
  const keyLength = num(md.get(`${arch}.attention.key_length`)) ?? embd / heads;
  const valueLength = num(md.get(`${arch}.attention.value_length`)) ?? embd / heads;
  const layerWeightBytes: number[] = Array.from({ length: layers }, () => 0);
  let outputBytes = 0;
  for (const t of header.tensors) {
    const bytes = tensorBytes(t.type, t.dims);
    if (bytes === null) return { error: `tensor '${t.name}' has ggml type ${t.type}, whose size this fit does not know` };
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) {
      const i = Number(m[1]);
      if (i < layers) layerWeightBytes[i]! += bytes;
    } else if (t.name.startsWith("output")) {
      outputBytes += bytes;
    }
  }
  return { layers, layerWeightBytes, outputBytes, kvBytesPerLayerToken: kvHeads * (keyLength + valueLength) * F16 };
}

export interface FitGpuLayersInput {
  sizes: GgufLayerSizes;
  /** Tokens of KV cache the engine allocates (llama-server: --ctx-size, i.e. context x parallel). */
  kvTokens: number;
  gpus: GpuReport;
  /** Override the margin (bytes); default FIT_MARGIN_BYTES + FIT_MARGIN_FRACTION of free. */
  marginBytes?: number;
}

const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;
const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;

/**
 * How many layers fit in the largest GPU's free VRAM, minus a margin. llama.cpp offloads the last layers first and
 * counts the output as one more layer, so `layers + 1` means the whole model; 0 means CPU only.
 */
export function fitGpuLayers(input: FitGpuLayersInput): GpuLayerFit {
  const { sizes, kvTokens, gpus } = input;
  if (gpus.gpus.length === 0) return { gpuLayers: 0, reason: `auto: no GPU (${gpus.error ?? "none reported"}), all ${sizes.layers} layers on the CPU`, vramBytes: 0 };
  const gpu = gpus.gpus.reduce((a, b) => (b.vramFreeBytes > a.vramFreeBytes ? b : a));
  const margin = input.marginBytes ?? FIT_MARGIN_BYTES + FIT_MARGIN_FRACTION * gpu.vramFreeBytes;
  const budget = gpu.vramFreeBytes - margin;
  const kvPerLayer = sizes.kvBytesPerLayerToken * kvTokens;
  const where = `${gib(gpu.vramFreeBytes)} free on ${gpu.name} (margin ${gib(margin)})`;
  let used = 0;
  let fitted = 0;
  for (let i = sizes.layers - 1; i >= 0; i--) {
    const cost = sizes.layerWeightBytes[i]! + kvPerLayer;
    if (used + cost > budget) break;
    used += cost;
    fitted++;
  }
  const avgWeights = sizes.layerWeightBytes.reduce((a, b) => a + b, 0) / sizes.layers;
  const per = `${mib(avgWeights)} weights + ${mib(kvPerLayer)} KV cache (${kvTokens} tokens) per layer`;
  if (fitted === sizes.layers && used + sizes.outputBytes <= budget) {
    return { gpuLayers: sizes.layers + 1, reason: `auto: all ${sizes.layers} layers and the output fit in ${where}: ${per}`, vramBytes: used + sizes.outputBytes };
  }
  return {
    gpuLayers: fitted,
    reason: fitted === 0 ? `auto: no layer fits in ${where}: ${per}; all on the CPU` : `auto: ${fitted} of ${sizes.layers} layers fit in ${where}: ${per}`,
    vramBytes: used,
  };
}
