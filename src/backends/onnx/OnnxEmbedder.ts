import type { Tensor } from "onnxruntime-node";
import type { OnnxRunner } from "./OnnxWorkerSession.js";
import { float16ToFloat32 } from "./float16ToFloat32.js";
import { l2Normalize, poolTokens, type PoolingMode } from "./poolTokens.js";

type OrtModule = typeof import("onnxruntime-node");

export interface EmbedderConfig {
  pooling: PoolingMode;
  normalize: boolean;
  padId: number;
}

/** Inputs evaluated in one run; more are split, so a large request cannot allocate without bound. */
const MAX_BATCH = 16;

/**
 * An encoder graph (BERT-like: input_ids, attention_mask, token_type_ids) whose token vectors are pooled and
 * normalised as the folder's sentence-transformers config says. A graph that already returns
 * `sentence_embedding` is used as it is.
 */
export class OnnxEmbedder {
  private readonly inputs: Set<string>;
  private readonly output: string;
  private readonly pooled: boolean;
  private readonly intTypes: Map<string, string>;

  constructor(
    private readonly ort: OrtModule,
    private readonly session: OnnxRunner,
    readonly config: EmbedderConfig,
  ) {
    this.inputs = new Set(session.inputNames);
    if (!this.inputs.has("input_ids")) throw new Error("the graph has no input_ids input");
    for (const name of session.inputNames) {
      if (!["input_ids", "attention_mask", "token_type_ids", "position_ids"].includes(name)) {
        throw new Error(`the graph takes an input '${name}' that the ONNX engine does not know how to fill`);
      }
    }
    const outs = session.outputNames;
    this.pooled = outs.includes("sentence_embedding");
    this.output = this.pooled ? "sentence_embedding" : (["last_hidden_state", "token_embeddings"].find((n) => outs.includes(n)) ?? outs[0]!);
    this.intTypes = new Map(session.inputMetadata.map((m) => [m.name, m.isTensor ? m.type : "int64"] as [string, string]));
  }

  async embed(batch: readonly (readonly number[])[]): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < batch.length; i += MAX_BATCH) out.push(...(await this.run(batch.slice(i, i + MAX_BATCH))));
    return out;
  }

  private async run(batch: readonly (readonly number[])[]): Promise<number[][]> {
    const { ort } = this;
    const seq = Math.max(1, ...batch.map((t) => t.length));
    const n = batch.length;
    const ids = new Array<number>(n * seq).fill(this.config.padId);
    const mask = batch.map((t) => Array.from({ length: seq }, (_, j) => (j < t.length ? 1 : 0)));
    batch.forEach((t, b) => t.forEach((id, j) => (ids[b * seq + j] = id)));
    const ints = (name: string, values: number[]): Tensor =>
      this.intTypes.get(name) === "int32"
        ? new ort.Tensor("int32", Int32Array.from(values), [n, seq])
        : new ort.Tensor(
            "int64",
            BigInt64Array.from(values, (v) => BigInt(v)),
            [n, seq],
          );
    const feeds: Record<string, Tensor> = { input_ids: ints("input_ids", ids) };
    if (this.inputs.has("attention_mask")) feeds.attention_mask = ints("attention_mask", mask.flat());
    if (this.inputs.has("token_type_ids")) feeds.token_type_ids = ints("token_type_ids", new Array<number>(n * seq).fill(0));
    if (this.inputs.has("position_ids"))
      feeds.position_ids = ints(
        "position_ids",
        batch.flatMap(() => Array.from({ length: seq }, (_, j) => j)),
      );
    const result = await this.session.run(feeds);
    const t = result[this.output];
    if (!t) throw new Error(`the graph returned no '${this.output}' output`);
    const data = t.type === "float16" ? float16ToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
    let vectors: ArrayLike<number>[];
    if (this.pooled || t.dims.length === 2) {
      const dim = t.dims[t.dims.length - 1]!;
      vectors = Array.from({ length: n }, (_, b) => data.subarray(b * dim, (b + 1) * dim));
    } else {
      vectors = poolTokens(data, [n, t.dims[1]!, t.dims[2]!], mask, this.config.pooling);
    }
    return vectors.map((v) => (this.config.normalize ? l2Normalize(v) : Array.from(v)));
  }
}
