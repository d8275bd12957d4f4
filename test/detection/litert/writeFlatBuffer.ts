/**
 * A minimal FlatBuffer writer for test fixtures. It lays objects out front to back: each table's vtable sits just
 * before it, and what a table points at (strings, vectors, sub-tables) follows it, so every uoffset is positive.
 */

type FbField =
  | undefined
  | { u8: number }
  | { u32: number }
  | { u64: number }
  | { str: string }
  | { table: FbField[] }
  | { tables: FbField[][] }
  | { i32s: number[] }
  | { u8s: number[] };

class FlatBufferWriter {
  private bytes: number[] = [];

  private align(n: number): void {
    while (this.bytes.length % n) this.bytes.push(0);
  }

  private reserve(n: number): number {
    const p = this.bytes.length;
    for (let i = 0; i < n; i++) this.bytes.push(0);
    return p;
  }

  private set(p: number, value: number, size: number): void {
    let v = BigInt.asUintN(size * 8, BigInt(value));
    for (let i = 0; i < size; i++) {
      this.bytes[p + i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }

  private string(s: string): number {
    this.align(4);
    const b = new TextEncoder().encode(s);
    const p = this.reserve(4 + b.length + 1);
    this.set(p, b.length, 4);
    b.forEach((x, i) => (this.bytes[p + 4 + i] = x));
    return p;
  }

  private scalarVector(values: number[], size: number): number {
    this.align(Math.max(4, size));
    const p = this.reserve(4 + size * values.length);
    this.set(p, values.length, 4);
    values.forEach((v, i) => this.set(p + 4 + size * i, v, size));
    return p;
  }

  private tableVector(list: FbField[][]): number {
    this.align(4);
    const p = this.reserve(4 + 4 * list.length);
    this.set(p, list.length, 4);
    list.forEach((t, i) => {
      const slot = p + 4 + 4 * i;
      this.set(slot, this.table(t) - slot, 4);
    });
    return p;
  }

  table(fields: FbField[]): number {
    this.align(4);
    const vt = this.reserve(4 + 2 * fields.length);
    this.align(8);
    const t = this.reserve(4);
    this.set(t, t - vt, 4); // soffset: vtable = table - soffset
    const pending: [number, FbField][] = [];
    fields.forEach((f, i) => {
      if (f === undefined) return;
      let p: number;
      if ("u8" in f) {
        p = this.reserve(1);
        this.set(p, f.u8, 1);
      } else if ("u32" in f) {
        this.align(4);
        p = this.reserve(4);
        this.set(p, f.u32, 4);
      } else if ("u64" in f) {
        this.align(8);
        p = this.reserve(8);
        this.set(p, f.u64, 8);
      } else {
        this.align(4);
        p = this.reserve(4);
        pending.push([p, f]);
      }
      this.set(vt + 4 + 2 * i, p - t, 2);
    });
    this.set(vt, 4 + 2 * fields.length, 2);
    this.set(vt + 2, this.bytes.length - t, 2);
    for (const [slot, f] of pending) {
      const target =
        f && "str" in f
          ? this.string(f.str)
          : f && "table" in f
            ? this.table(f.table)
            : f && "i32s" in f
              ? this.scalarVector(f.i32s, 4)
              : f && "u8s" in f
                ? this.scalarVector(f.u8s, 1)
                : this.tableVector((f as { tables: FbField[][] }).tables);
      this.set(slot, target - slot, 4);
    }
    return t;
  }

  /** A whole buffer: root uoffset, optional 4-byte file identifier, then the root table. */
  static finish(root: FbField[], identifier?: string): Uint8Array {
    const w = new FlatBufferWriter();
    w.reserve(identifier ? 8 : 4);
    if (identifier) new TextEncoder().encode(identifier).forEach((b, i) => (w.bytes[4 + i] = b));
    const t = w.table(root);
    w.set(0, t, 4);
    w.align(8);
    return Uint8Array.from(w.bytes);
  }
}

/**
 * A TFLite Model (schema.fbs slots: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 6 metadata,
 * 7 signature_defs). Each subgraph is one ADD of two [1, 4] tensors, the second a constant in buffer 1; buffer 0 is
 * the empty sentinel, as converters write it.
 */
export function writeTflite(opts: {
  description?: string;
  signatures?: { key: string; inputs?: string[]; outputs?: string[] }[];
  metadata?: string[];
  subgraphs?: string[];
  padding?: number;
  /** Breakages, for tests of what the interpreter refuses. */
  version?: number;
  omit?: ("operator_codes" | "subgraphs" | "buffers" | "tensors")[];
  /** Buffer index of the constant tensor `w` (default 1). */
  weightBuffer?: number;
  /** Opcode index of the ADD (default 0). */
  opcodeIndex?: number;
  /** Tensor index of the subgraph's output (default 2). */
  outputTensor?: number;
  /** A third buffer stored past the FlatBuffer (offset/size from the start of the model). */
  externalBuffer?: { offset: number; size: number };
}): Uint8Array {
  const omit = new Set(opts.omit ?? []);
  const tensorMaps = (names: string[] = []): FbField => ({ tables: names.map((n) => [{ str: n }, { u32: 0 }]) });
  const tensor = (name: string, buffer: number): FbField[] => [{ i32s: [1, 4] }, { u8: 0 }, { u32: buffer }, { str: name }];
  const subgraph = (name: string): FbField[] => [
    omit.has("tensors") ? undefined : { tables: [tensor("x", 0), tensor("w", opts.weightBuffer ?? 1), tensor("y", 0)] },
    { i32s: [0] },
    { i32s: [opts.outputTensor ?? 2] },
    { tables: [[{ u32: opts.opcodeIndex ?? 0 }, { i32s: [0, 1] }, { i32s: [2] }]] },
    { str: name },
  ];
  const buffers: FbField[][] = [[], [{ u8s: Array.from({ length: 16 }, (_, i) => i) }]];
  if (opts.externalBuffer) buffers.push([undefined, { u64: opts.externalBuffer.offset }, { u64: opts.externalBuffer.size }]);
  const model = FlatBufferWriter.finish(
    [
      { u32: opts.version ?? 3 },
      omit.has("operator_codes") ? undefined : { tables: [[{ u8: 0 }, undefined, { u32: 1 }, { u32: 0 }]] },
      omit.has("subgraphs") ? undefined : { tables: (opts.subgraphs ?? ["main"]).map(subgraph) },
      opts.description !== undefined ? { str: opts.description } : undefined,
      omit.has("buffers") ? undefined : { tables: buffers },
      undefined,
      opts.metadata ? { tables: opts.metadata.map((m) => [{ str: m }, { u32: 0 }]) } : undefined,
      opts.signatures ? { tables: opts.signatures.map((s) => [tensorMaps(s.inputs), tensorMaps(s.outputs), { str: s.key }, undefined, { u32: 0 }]) } : undefined,
    ],
    "TFL3",
  );
  if (!opts.padding) return model;
  const out = new Uint8Array(model.length + opts.padding);
  out.set(model);
  return out;
}

/**
 * A `.litertlm` file: 32-byte prefix, the LiteRTLMMetaData header, then each section's data, 16-byte aligned: a
 * TFLite model (writeTflite) for TFLiteModel sections (type 3), `sectionBytes` (default 64) of zeros for the others.
 * `begin`/`end` override where a section claims to be.
 */
export function writeLitertlm(opts: {
  version?: [number, number, number];
  sections: { dataType: number; modelType?: string; begin?: number; end?: number; data?: Uint8Array }[];
  system?: Record<string, string>;
  sectionBytes?: number;
}): Uint8Array {
  const kv = (key: string, value: string): FbField[] => [{ str: key }, { u8: 9 }, { table: [{ str: value }] }];
  const datas = opts.sections.map((s) => s.data ?? (s.dataType === 3 ? writeTflite({}) : new Uint8Array(opts.sectionBytes ?? 64)));
  const header = (ranges: [number, number][]) =>
    FlatBufferWriter.finish([
      opts.system ? { table: [{ tables: Object.entries(opts.system).map(([k, v]) => kv(k, v)) }] } : undefined,
      {
        table: [
          {
            tables: opts.sections.map((s, i) => [
              s.modelType ? { tables: [kv("model_type", s.modelType)] } : undefined,
              { u64: s.begin ?? ranges[i]![0] },
              { u64: s.end ?? ranges[i]![1] },
              { u8: s.dataType },
            ]),
          },
        ],
      },
    ]);
  // The header's size does not depend on the offsets (fixed-size u64 fields): lay out once, then write them in.
  const headerLength = header(opts.sections.map(() => [0, 0])).length;
  const ranges: [number, number][] = [];
  let at = 32 + headerLength;
  for (const d of datas) {
    at = Math.ceil(at / 16) * 16;
    ranges.push([at, at + d.length]);
    at += d.length;
  }
  const out = new Uint8Array(Math.max(at, 32 + headerLength));
  out.set(new TextEncoder().encode("LITERTLM"), 0);
  const v = new DataView(out.buffer);
  const [major, minor, patch] = opts.version ?? [1, 5, 0];
  v.setUint32(8, major, true);
  v.setUint32(12, minor, true);
  v.setUint32(16, patch, true);
  v.setBigUint64(24, BigInt(32 + headerLength), true);
  out.set(header(ranges), 32);
  datas.forEach((d, i) => out.set(d, ranges[i]![0]));
  return out;
}
