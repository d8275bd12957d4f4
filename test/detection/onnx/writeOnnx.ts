/** A tiny protobuf writer that emits ONNX ModelProto bytes for tests (field numbers from onnx.proto). */

type Bytes = Uint8Array;

export function varint(value: number | bigint): Bytes {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Uint8Array.from(out);
}

export function concat(parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function tag(field: number, wire: number): Bytes {
  return varint(field * 8 + wire);
}

export function intField(field: number, value: number | bigint): Bytes {
  return concat([tag(field, 0), varint(value)]);
}

export function bytesField(field: number, payload: Bytes): Bytes {
  return concat([tag(field, 2), varint(payload.length), payload]);
}

export function stringField(field: number, s: string): Bytes {
  return bytesField(field, new TextEncoder().encode(s));
}

export function messageField(field: number, parts: Bytes[]): Bytes {
  return bytesField(field, concat(parts));
}

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7, FLOAT16: 10 } as const;

interface ValueSpec {
  name: string;
  elemType?: number;
  shape?: (number | string | null)[];
}

interface InitializerSpec {
  name: string;
  dims: number[];
  dataType?: number;
  /** Inline raw_data of this many zero bytes. */
  rawBytes?: number;
  external?: { location: string; offset?: number; length?: number };
}

export interface NodeSpec {
  op: string;
  domain?: string;
  inputs?: string[];
  outputs?: string[];
}

interface ModelSpec {
  irVersion?: number;
  producer?: string;
  producerVersion?: string;
  opsets?: { domain?: string; version: number }[];
  graphName?: string;
  nodes?: NodeSpec[];
  initializers?: InitializerSpec[];
  inputs?: ValueSpec[];
  outputs?: ValueSpec[];
  metadata?: Record<string, string>;
  /** Omit the graph entirely. */
  noGraph?: boolean;
}

export function valueInfo(field: number, v: ValueSpec): Bytes {
  const tensor: Bytes[] = [intField(1, v.elemType ?? DataType.FLOAT)];
  if (v.shape) {
    const dims = v.shape.map((d) => messageField(1, d === null ? [] : typeof d === "number" ? [intField(1, d)] : [stringField(2, d)]));
    tensor.push(messageField(2, dims));
  }
  return messageField(field, [stringField(1, v.name), messageField(2, [messageField(1, tensor)])]);
}

function tensorProto(field: number, t: InitializerSpec): Bytes {
  const parts: Bytes[] = [bytesField(1, concat(t.dims.map((d) => varint(d)))), intField(2, t.dataType ?? DataType.FLOAT), stringField(8, t.name)];
  if (t.rawBytes !== undefined) parts.push(bytesField(9, new Uint8Array(t.rawBytes)));
  if (t.external) {
    const e = t.external;
    parts.push(messageField(13, [stringField(1, "location"), stringField(2, e.location)]));
    if (e.offset !== undefined) parts.push(messageField(13, [stringField(1, "offset"), stringField(2, String(e.offset))]));
    if (e.length !== undefined) parts.push(messageField(13, [stringField(1, "length"), stringField(2, String(e.length))]));
    parts.push(intField(14, 1));
  }
  return messageField(field, parts);
}

/** Fields in field-number order, as protobuf serialises them: nodes, name, initializers, then inputs/outputs. */
export function writeOnnx(spec: ModelSpec): Bytes {
  const graph: Bytes[] = [];
  for (const n of spec.nodes ?? []) {
    const node: Bytes[] = [];
    for (const i of n.inputs ?? []) node.push(stringField(1, i));
    for (const o of n.outputs ?? []) node.push(stringField(2, o));
    node.push(stringField(4, n.op));
    if (n.domain) node.push(stringField(7, n.domain));
    graph.push(messageField(1, node));
  }
  graph.push(stringField(2, spec.graphName ?? "main_graph"));
  for (const t of spec.initializers ?? []) graph.push(tensorProto(5, t));
  for (const i of spec.inputs ?? []) graph.push(valueInfo(11, i));
  for (const o of spec.outputs ?? []) graph.push(valueInfo(12, o));

  const model: Bytes[] = [intField(1, spec.irVersion ?? 8), stringField(2, spec.producer ?? "pytorch")];
  if (spec.producerVersion) model.push(stringField(3, spec.producerVersion));
  if (!spec.noGraph) model.push(messageField(7, graph));
  for (const o of spec.opsets ?? [{ version: 17 }]) {
    model.push(messageField(8, [...(o.domain !== undefined ? [stringField(1, o.domain)] : []), intField(2, o.version)]));
  }
  for (const [k, v] of Object.entries(spec.metadata ?? {})) model.push(messageField(14, [stringField(1, k), stringField(2, v)]));
  return concat(model);
}

/** A decoder with a KV cache, as optimum exports it: past_key_values.N.{key,value} in, present.N.* out. */
export function decoderSpec(layers = 2, extra: Partial<ModelSpec> = {}): ModelSpec {
  const past: ValueSpec[] = [];
  const present: ValueSpec[] = [];
  for (let i = 0; i < layers; i++) {
    for (const kv of ["key", "value"]) {
      past.push({ name: `past_key_values.${i}.${kv}`, shape: ["batch_size", 4, "past_sequence_length", 16] });
      present.push({ name: `present.${i}.${kv}`, shape: ["batch_size", 4, "total_sequence_length", 16] });
    }
  }
  return {
    nodes: [{ op: "MatMul", inputs: ["a", "b"], outputs: ["c"] }, { op: "Softmax" }],
    inputs: [
      { name: "input_ids", elemType: DataType.INT64, shape: ["batch_size", "sequence_length"] },
      { name: "attention_mask", elemType: DataType.INT64, shape: ["batch_size", "total_sequence_length"] },
      ...past,
    ],
    outputs: [{ name: "logits", shape: ["batch_size", "sequence_length", 32000] }, ...present],
    initializers: [{ name: "embed.weight", dims: [32, 16], rawBytes: 32 * 16 * 4 }],
    ...extra,
  };
}

export function encoderSpec(extra: Partial<ModelSpec> = {}): ModelSpec {
  return {
    nodes: [{ op: "Gather" }, { op: "LayerNormalization" }],
    inputs: [
      { name: "input_ids", elemType: DataType.INT64, shape: ["batch_size", "sequence_length"] },
      { name: "attention_mask", elemType: DataType.INT64, shape: ["batch_size", "sequence_length"] },
    ],
    outputs: [{ name: "last_hidden_state", shape: ["batch_size", "sequence_length", 384] }],
    initializers: [{ name: "embeddings.word_embeddings.weight", dims: [100, 8], rawBytes: 100 * 8 * 4 }],
    ...extra,
  };
}

export function classifierSpec(extra: Partial<ModelSpec> = {}): ModelSpec {
  return {
    nodes: [{ op: "Gemm" }],
    inputs: [
      { name: "input_ids", elemType: DataType.INT64, shape: ["batch_size", "sequence_length"] },
      { name: "attention_mask", elemType: DataType.INT64, shape: ["batch_size", "sequence_length"] },
    ],
    outputs: [{ name: "logits", shape: ["batch_size", 2] }],
    initializers: [{ name: "classifier.weight", dims: [2, 8], rawBytes: 64 }],
    ...extra,
  };
}
