import type { InferenceSession, Tensor } from "onnxruntime-node";
import type { DecoderGraph } from "./describeDecoderGraph.js";
import { float16ToFloat32 } from "./float16ToFloat32.js";

type OrtModule = typeof import("onnxruntime-node");

/** One generation's KV cache: `present.*` of the last step, fed back as `past_key_values.*`. */
export interface DecoderState {
  past: Map<string, Tensor>;
  /** Tokens the cache holds. */
  length: number;
  /** Graphs without a KV cache re-run every token so far. */
  tokens: number[];
}

/**
 * A causal LM graph and its KV cache. Each request owns a `DecoderState`, so concurrent requests never share a
 * cache; `step` evaluates only the new tokens (the prompt first, then one token at a time) and returns the logits
 * of the last one.
 */
export class OnnxDecoder {
  constructor(
    private readonly ort: OrtModule,
    private readonly session: InferenceSession,
    readonly graph: DecoderGraph,
  ) {}

  get hasCache(): boolean {
    return this.graph.cache.length > 0;
  }

  start(): DecoderState {
    const past = new Map<string, Tensor>();
    for (const kv of this.graph.cache) {
      const dims = [1, kv.heads, 0, kv.headDim];
      past.set(kv.input, kv.type === "float16" ? new this.ort.Tensor("float16", new Uint16Array(0), dims) : new this.ort.Tensor("float32", new Float32Array(0), dims));
    }
    return { past, length: 0, tokens: [] };
  }

  /** Evaluates `tokens` after what `state` holds; returns the next-token logits (a fresh array). */
  async step(state: DecoderState, tokens: readonly number[]): Promise<Float32Array> {
    const { graph, ort } = this;
    const cached = this.hasCache;
    const ids = cached ? tokens : [...state.tokens, ...tokens];
    const past = cached ? state.length : 0;
    const total = past + ids.length;
    // Int tensors are written element by element: no intermediate arrays on the per-token path.
    const ints = (name: string, n: number, value: (i: number) => number, dims: number[]): Tensor => {
      if (graph.intType[name] === "int32") {
        const a = new Int32Array(n);
        for (let i = 0; i < n; i++) a[i] = value(i);
        return new ort.Tensor("int32", a, dims);
      }
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = BigInt(value(i));
      return new ort.Tensor("int64", a, dims);
    };
    const n = ids.length;
    const feeds: Record<string, Tensor> = { [graph.inputIds]: ints(graph.inputIds, n, (i) => ids[i]!, [1, n]) };
    if (graph.attentionMask) feeds[graph.attentionMask] = ints(graph.attentionMask, total, () => 1, [1, total]);
    if (graph.positionIds) feeds[graph.positionIds] = ints(graph.positionIds, n, (i) => past + i, [1, n]);
    if (graph.cachePosition) feeds[graph.cachePosition] = ints(graph.cachePosition, n, (i) => past + i, [n]);
    if (graph.logitsToKeep) feeds[graph.logitsToKeep] = ints(graph.logitsToKeep, 1, () => 1, []);
    if (graph.useCacheBranch) feeds[graph.useCacheBranch] = new ort.Tensor("bool", Uint8Array.of(past > 0 ? 1 : 0), [1]);
    for (const kv of graph.cache) feeds[kv.input] = state.past.get(kv.input)!;

    const out = await this.session.run(feeds);
    const logits = out[graph.logits];
    if (!logits) throw new Error(`the graph returned no '${graph.logits}' output`);
    const vocab = logits.dims[logits.dims.length - 1]!;
    const rows = logits.data.length / vocab;
    const start = (rows - 1) * vocab;
    const row =
      logits.type === "float16"
        ? float16ToFloat32((logits.data as Uint16Array).subarray(start, start + vocab))
        : (logits.data as Float32Array).slice(start, start + vocab);
    if (cached) {
      for (const kv of graph.cache) {
        const present = out[kv.output];
        if (!present) throw new Error(`the graph returned no '${kv.output}' output`);
        state.past.set(kv.input, present);
      }
      state.length = total;
    } else {
      state.tokens = ids.slice();
    }
    return row;
  }
}
