import { openFileByteSource } from "../detection/gguf/ByteSource.js";
import { readGgufHeader } from "../detection/gguf/readGgufHeader.js";
import { fitGpuLayers, ggufLayerSizes } from "./fitGpuLayers.js";
import { queryGpus, type GpuReport } from "./queryGpus.js";

export type GpuLayersSetting = "auto" | "max" | number;

/** What a GGUF engine is given, and why: /v1/models (runtimeInfo) and the load log show both. */
export interface ResolvedGpuLayers {
  /** A number from our fit, or the setting as it was ("auto" left to the engine where we cannot fit). */
  gpuLayers: GpuLayersSetting;
  reason: string;
  /** VRAM our fit expects the model to take; null when we did not fit. */
  vramBytes: number | null;
}

export interface ResolveGpuLayersOptions {
  /** The GGUF file (its first shard). */
  path: string;
  setting: GpuLayersSetting;
  /** Tokens of KV cache the engine allocates (context x parallel). */
  kvTokens: number;
  env: NodeJS.ProcessEnv;
  /** Injectable GPU report (tests); default queryGpus. */
  gpus?: () => Promise<GpuReport>;
  signal?: AbortSignal;
}

/**
 * `gpuLayers: auto` on an NVIDIA machine becomes our own fit (free VRAM minus a margin against the header's per-layer
 * weights and KV cache); a set number or "max" is kept as configured. Without an NVIDIA GPU report, or with a header
 * the fit cannot size, "auto" stays the engine's own choice (Metal, Vulkan, or the CPU), with the reason.
 */
export async function resolveGpuLayers(options: ResolveGpuLayersOptions): Promise<ResolvedGpuLayers> {
  const { setting } = options;
  if (setting !== "auto") return { gpuLayers: setting, reason: `configured: ${setting}`, vramBytes: null };
  const gpus = await (options.gpus ?? (() => queryGpus({ env: options.env, signal: options.signal })))();
  if (gpus.gpus.length === 0) return { gpuLayers: "auto", reason: `auto: left to the engine (${gpus.error ?? "no NVIDIA GPU reported"})`, vramBytes: null };
  const src = await openFileByteSource(options.path);
  let sizes;
  try {
    sizes = ggufLayerSizes(await readGgufHeader(src, { signal: options.signal }));
  } finally {
    await src.close();
  }
  if ("error" in sizes) return { gpuLayers: "auto", reason: `auto: left to the engine (${sizes.error})`, vramBytes: null };
  const fit = fitGpuLayers({ sizes, kvTokens: options.kvTokens, gpus });
  return { gpuLayers: fit.gpuLayers, reason: fit.reason, vramBytes: fit.vramBytes };
}
