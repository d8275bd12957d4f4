/**
 * Where each field of a valid GGUF lies, so tests can rewrite one field of a real fixture (a key's value, one token's
 * bytes, a tensor's offset) instead of building files by hand. Trusts its input: only for files the tests made.
 */

interface GgufKvLayout {
  type: number;
  /** Where the value starts (after the key and its type). For arrays: the item type. */
  valueOffset: number;
  /** For arrays: where the u64 length is, and each string item's [offset of its u64 length, byte length]. */
  arrayLengthOffset?: number;
  items?: [number, number][];
}

interface GgufTensorLayout {
  name: string;
  nDimsOffset: number;
  dimOffsets: number[];
  typeOffset: number;
  offsetOffset: number;
}

interface GgufLayout {
  tensorCountOffset: number;
  kvCountOffset: number;
  kvs: Map<string, GgufKvLayout>;
  tensors: GgufTensorLayout[];
  headerEnd: number;
}

const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function ggufLayout(buf: Uint8Array): GgufLayout {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 8;
  const u32 = () => ((p += 4), v.getUint32(p - 4, true));
  const u64 = () => ((p += 8), Number(v.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return Buffer.from(buf.subarray(p - n, p)).toString("utf8");
  };
  const tensorCountOffset = p;
  const tensorCount = u64();
  const kvCountOffset = p;
  const kvCount = u64();
  const kvs = new Map<string, GgufKvLayout>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    const kv: GgufKvLayout = { type, valueOffset: p };
    if (type === 8) str();
    else if (type === 9) {
      const itemType = u32();
      kv.arrayLengthOffset = p;
      const n = u64();
      if (itemType === 8) {
        kv.items = [];
        for (let k = 0; k < n; k++) {
          const at = p;
          const len = u64();
          kv.items.push([at, len]);
          p += len;
        }
      } else p += n * SIZES[itemType]!;
    } else p += SIZES[type]!;
    kvs.set(key, kv);
  }
  const tensors: GgufTensorLayout[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const nDimsOffset = p;
    const nDims = u32();
    const dimOffsets = Array.from({ length: nDims }, () => ((p += 8), p - 8));
    const typeOffset = p;
    p += 4;
    const offsetOffset = p;
    p += 8;
    tensors.push({ name, nDimsOffset, dimOffsets, typeOffset, offsetOffset });
  }
  return { tensorCountOffset, kvCountOffset, kvs, tensors, headerEnd: p };
}

/** Token `id`'s bytes in a file laid out by ggufLayout: [offset, length]. */
export function tokenBytes(layout: GgufLayout, id: number): [number, number] {
  const item = layout.kvs.get("tokenizer.ggml.tokens")!.items![id]!;
  return [item[0] + 8, item[1]];
}
