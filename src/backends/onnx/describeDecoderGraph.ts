/** What the engine needs to know about one input or output of a graph. */
export interface GraphValue {
  name: string;
  /** `float32`, `float16`, `int64`, `int32`, `bool`, ...; undefined for non-tensors. */
  type?: string;
  /** Dimensions: numbers where fixed, names where symbolic. */
  shape?: readonly (number | string)[];
}

export interface KvPair {
  input: string;
  output: string;
  /** Element type of the cache (`float32` or `float16`). */
  type: string;
  /** KV heads and head size, from the graph or the model config. */
  heads: number;
  headDim: number;
}

export interface DecoderGraph {
  inputIds: string;
  /** The int type each id-like input takes (`int64` in optimum exports, `int32` in some genai ones). */
  intType: Record<string, "int64" | "int32">;
  attentionMask: string | null;
  positionIds: string | null;
  /** optimum's merged decoders switch between the first step and cached steps with this boolean. */
  useCacheBranch: string | null;
  cachePosition: string | null;
  /** Graphs exported with `logits_to_keep` compute the last row only when it is 1. */
  logitsToKeep: string | null;
  logits: string;
  cache: KvPair[];
}

export interface DecoderNames {
  /** onnxruntime-genai's `past_key_names` / `present_key_names` patterns, `%d` for the layer. */
  pastKey?: string;
  pastValue?: string;
  presentKey?: string;
  presentValue?: string;
}

export interface KvFallback {
  heads: number | null;
  headDim: number | null;
}

export class UnsupportedGraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedGraphError";
  }
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;

function patternToRegex(pattern: string): RegExp {
  const escaped = pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("%d", "(\\d+)");
  return new RegExp(`^${escaped}$`);
}

/**
 * Maps a causal LM graph's inputs and outputs to their roles: optimum / transformers.js exports
 * (`past_key_values.N.key` in, `present.N.key` out) and onnxruntime-genai graphs (names from genai_config.json).
 * Throws UnsupportedGraphError when a required input has no role, so a load fails with the reason.
 */
export function describeDecoderGraph(inputs: readonly GraphValue[], outputs: readonly GraphValue[], fallback: KvFallback, names: DecoderNames = {}): DecoderGraph {
  const outputNames = new Set(outputs.map((o) => o.name));
  const byName = new Map(inputs.map((i) => [i.name, i]));
  const intType: Record<string, "int64" | "int32"> = {};
  const take = (...candidates: string[]): string | null => {
    for (const c of candidates) {
      const v = byName.get(c);
      if (v) {
        if (v.type === "int32" || v.type === "int64") intType[c] = v.type;
        return c;
      }
    }
    return null;
  };
  const inputIds = take("input_ids");
  if (!inputIds) throw new UnsupportedGraphError("the graph has no input_ids input (embeddings-only or vision graphs are not text generators)");
  const attentionMask = take("attention_mask");
  const positionIds = take("position_ids");
  const cachePosition = take("cache_position");
  const logitsToKeep = take("logits_to_keep", "num_logits_to_keep");
  const useCacheBranch = byName.has("use_cache_branch") ? "use_cache_branch" : null;
  const logits = outputNames.has("logits") ? "logits" : (outputs[0]?.name ?? null);
  if (!logits) throw new UnsupportedGraphError("the graph has no outputs");

  const pastPatterns: [RegExp, "key" | "value"][] = [];
  if (names.pastKey) pastPatterns.push([patternToRegex(names.pastKey), "key"]);
  if (names.pastValue) pastPatterns.push([patternToRegex(names.pastValue), "value"]);
  const presentName = (layer: number, kind: "key" | "value", input: string): string | null => {
    const pattern = kind === "key" ? names.presentKey : names.presentValue;
    const candidates = [
      ...(pattern ? [pattern.replace("%d", String(layer))] : []),
      `present.${layer}.${kind}`,
      input.replace(/^past_key_values/, "present"),
      input.replace(/^past_key_values/, "present_key_values"),
      input.replace(/^past/, "present"),
    ];
    return candidates.find((c) => outputNames.has(c)) ?? null;
  };

  const cache: (KvPair & { layer: number; kind: string })[] = [];
  const known = new Set([inputIds, attentionMask, positionIds, cachePosition, logitsToKeep, useCacheBranch].filter((n): n is string => n !== null));
  for (const input of inputs) {
    if (known.has(input.name)) continue;
    let layer: number | null = null;
    let kind: "key" | "value" | null = null;
    const m = PAST.exec(input.name);
    if (m) {
      layer = Number(m[1]);
      kind = m[2] as "key" | "value";
    } else {
      for (const [re, k] of pastPatterns) {
        const pm = re.exec(input.name);
        if (pm) {
          layer = Number(pm[1]);
          kind = k;
          break;
        }
      }
    }
    if (layer === null || kind === null) {
      throw new UnsupportedGraphError(`the graph takes an input '${input.name}' that the ONNX engine does not know how to fill`);
    }
    const output = presentName(layer, kind, input.name);
    if (!output) throw new UnsupportedGraphError(`the graph takes '${input.name}' but returns no matching present.${layer}.${kind} output`);
    const shape = input.shape ?? [];
    const heads = typeof shape[1] === "number" ? shape[1] : fallback.heads;
    const headDim = typeof shape[3] === "number" ? shape[3] : fallback.headDim;
    if (shape.length !== 4 || heads === null || headDim === null) {
      throw new UnsupportedGraphError(`cannot tell the KV-cache shape of '${input.name}' (shape ${JSON.stringify(shape)}; config.json has no head counts)`);
    }
    const type = input.type === "float16" ? "float16" : input.type === "float32" || input.type === undefined ? "float32" : null;
    if (type === null) throw new UnsupportedGraphError(`KV-cache input '${input.name}' has type ${input.type}; float32 and float16 are supported`);
    cache.push({ input: input.name, output, type, heads, headDim, layer, kind });
  }
  if (useCacheBranch !== null && cache.length === 0) throw new UnsupportedGraphError("the graph has use_cache_branch but no past_key_values inputs");
  cache.sort((a, b) => a.layer - b.layer || a.kind.localeCompare(b.kind));
  return {
    inputIds,
    intType,
    attentionMask,
    positionIds,
    useCacheBranch,
    cachePosition,
    logitsToKeep,
    logits,
    cache: cache.map(({ input, output, type, heads, headDim }) => ({ input, output, type, heads, headDim })),
  };
}
