import type { ModelDescriptor } from "../core/types.js";

/**
 * A rough resident size for a loaded model: its weights plus the KV cache for `parallel` sequences of
 * `contextSize` tokens. Without the layer count and head sizes (detection does not record them) the KV cache is
 * estimated from the weights: about size / 50 000 bytes per token (a 4 GB 7B model: ~80 KiB/token, in line with
 * grouped-query attention at f16), at least 2 KiB. Good enough to order eviction and keep a budget; not exact.
 */
export function estimateModelMemory(model: ModelDescriptor, options: { contextSize: number; parallel: number }): number {
  const weights = model.sizeBytes;
  if (model.engine === "upstream") return 0;
  const context = Math.min(options.contextSize, model.detection.contextLength ?? options.contextSize);
  const perToken = Math.max(2048, Math.round(weights / 50_000));
  // Encoders (embeddings, rerank) keep no cache between requests.
  const kv = model.task === "embeddings" || model.task === "rerank" ? 0 : perToken * context * options.parallel;
  return Math.round(weights * 1.05) + kv;
}
