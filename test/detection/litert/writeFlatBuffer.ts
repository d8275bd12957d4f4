/**
 * A minimal FlatBuffer writer for test fixtures. It lays objects out front to back: each table's vtable sits just
 * before it, and what a table points at (strings, vectors, sub-tables) follows it, so every uoffset is positive.
 */

export type FbField =
  | undefined
  | { u8: number }
  | { u32: number }
  | { u64: number }
  | { str: string }
  | { table: FbField[] }
  | { tables: FbField[][] };

export class FlatBufferWriter {
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
      const target = f && "str" in f ? this.string(f.str) : f && "table" in f ? this.table(f.table) : this.tableVector((f as { tables: FbField[][] }).tables);
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

/** A TFLite Model (schema.fbs slots: 0 version, 2 subgraphs, 3 description, 6 metadata, 7 signature_defs). */
export function writeTflite(opts: {
  description?: string;
  signatures?: { key: string; inputs?: string[]; outputs?: string[] }[];
  metadata?: string[];
  subgraphs?: string[];
  padding?: number;
}): Uint8Array {
  const tensorMaps = (names: string[] = []): FbField => ({ tables: names.map((n) => [{ str: n }, { u32: 0 }]) });
  const model = FlatBufferWriter.finish(
    [
      { u32: 3 },
      undefined,
      { tables: (opts.subgraphs ?? ["main"]).map((n) => [undefined, undefined, undefined, undefined, { str: n }]) },
      opts.description !== undefined ? { str: opts.description } : undefined,
      undefined,
      undefined,
      opts.metadata ? { tables: opts.metadata.map((m) => [{ str: m }, { u32: 0 }]) } : undefined,
      opts.signatures
        ? { tables: opts.signatures.map((s) => [tensorMaps(s.inputs), tensorMaps(s.outputs), { str: s.key }, undefined, { u32: 0 }]) }
        : undefined,
    ],
    "TFL3",
  );
  if (!opts.padding) return model;
  const out = new Uint8Array(model.length + opts.padding);
  out.set(model);
  return out;
}

/** A `.litertlm` file: 32-byte prefix, the LiteRTLMMetaData header, then `sectionBytes` of section data. */
export function writeLitertlm(opts: {
  version?: [number, number, number];
  sections: { dataType: number; modelType?: string; begin?: number; end?: number }[];
  system?: Record<string, string>;
  sectionBytes?: number;
}): Uint8Array {
  const kv = (key: string, value: string): FbField[] => [{ str: key }, { u8: 9 }, { table: [{ str: value }] }];
  const header = FlatBufferWriter.finish([
    opts.system ? { table: [{ tables: Object.entries(opts.system).map(([k, v]) => kv(k, v)) }] } : undefined,
    {
      table: [
        {
          tables: opts.sections.map((s) => [
            s.modelType ? { tables: [kv("model_type", s.modelType)] } : undefined,
            { u64: s.begin ?? 16384 },
            { u64: s.end ?? 32768 },
            { u8: s.dataType },
          ]),
        },
      ],
    },
  ]);
  const out = new Uint8Array(32 + header.length + (opts.sectionBytes ?? 64));
  out.set(new TextEncoder().encode("LITERTLM"), 0);
  const v = new DataView(out.buffer);
  const [major, minor, patch] = opts.version ?? [1, 5, 0];
  v.setUint32(8, major, true);
  v.setUint32(12, minor, true);
  v.setUint32(16, patch, true);
  v.setBigUint64(24, BigInt(32 + header.length), true);
  out.set(header, 32);
  return out;
}
