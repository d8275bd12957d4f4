import type { Tensor } from "onnxruntime-node";
import type { DecoderGraph } from "./describeDecoderGraph.js";
import type { OnnxRunner } from "./OnnxWorkerSession.js";

type OrtModule = typeof import("onnxruntime-node");

/** One generation: its KV cache lives in the session's worker under `id`; `release` frees it. */
export interface DecoderState {
  id: number;
  /** Tokens the cache holds. */
  length: number;
  /** Graphs without a KV cache re-run every token so far. */
  tokens: number[];
}

let nextState = 0;

/**
 * A causal LM graph and its KV cache. Each request owns a `DecoderState`, so concurrent requests never share a
 * cache; `step` evaluates only the new tokens (the prompt first, then one token at a time) and returns the logits
 * of the last one. The cache never leaves the worker thread: per step only the ids go in and one row comes out.
 */
export class OnnxDecoder {
  constructor(
    private readonly ort: OrtModule,
    private readonly session: OnnxRunner,
    readonly graph: DecoderGraph,
  ) {}

  get hasCache(): boolean {
    return this.graph.cache.length > 0;
  }

  start(): DecoderState {
    return { id: nextState++, length: 0, tokens: [] };
  }

  /** Frees the state's cache; call once the generation is over. */
  release(state: DecoderState): void {
    this.session.dropState(state.id);
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

    const row = await this.session.step({ state: state.id, feeds, cache: cached ? graph.cache : [], logits: graph.logits });
    if (cached) state.length = total;
    else state.tokens = ids.slice();
    return row;
  }
}
