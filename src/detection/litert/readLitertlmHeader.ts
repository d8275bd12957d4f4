import type { ByteSource } from "../gguf/ByteSource.js";
import { FlatBufferReader } from "./FlatBufferReader.js";
import { InvalidLiteRtError } from "./InvalidLiteRtError.js";

export type LitertlmValue = string | number | boolean;

export interface LitertlmSection {
  /** AnySectionDataType name (`TFLiteModel`, `SP_Tokenizer`, `LlmMetadataProto`, ...). */
  dataType: string;
  begin: number;
  end: number;
  /** The section's key/value items (`model_type: tf_lite_prefill_decode`, `backend_constraint: npu`), bounded. */
  items: Record<string, LitertlmValue>;
}

export interface LitertlmHeader {
  version: string;
  /** Where the header ends and section data may begin. */
  headerEnd: number;
  systemMetadata: Record<string, LitertlmValue>;
  sections: LitertlmSection[];
  bytesRead: number;
}

/** LiteRT-LM's container (schema/core/litertlm_header_schema.fbs): "LITERTLM", u32 major/minor/patch, u64 header end at 24. */
const LITERTLM_MAGIC = "LITERTLM";
const HEADER_BEGIN = 32;
/** LiteRT-LM writes a few KB of header; anything near this is not one. */
const MAX_HEADER_BYTES = 1 << 20;
const MAX_ITEMS = 64;

const SECTION_TYPES = [
  "NONE",
  "GenericBinaryData",
  "Deprecated",
  "TFLiteModel",
  "SP_Tokenizer",
  "LlmMetadataProto",
  "HF_Tokenizer_Zlib",
  "TFLiteWeights",
  "ExecutorMetadataProto",
];

export function hasLitertlmMagic(head: Uint8Array): boolean {
  return head.length >= 8 && String.fromCharCode(...head.subarray(0, 8)) === LITERTLM_MAGIC;
}

/** VData union member ids (1-based, in schema order) → how to read the member table's field 0. */
async function readValue(fb: FlatBufferReader, type: number, table: number): Promise<LitertlmValue | null> {
  const at = await fb.field(table, 0);
  if (type === 9) return at === null ? "" : fb.string(at, 1024);
  if (at === null) return type === 8 ? false : 0;
  const v = (n: number) => fb.bytes(at, n).then((b) => new DataView(b.buffer, b.byteOffset, b.byteLength));
  switch (type) {
    case 1:
      return (await v(1)).getUint8(0);
    case 2:
      return (await v(1)).getInt8(0);
    case 3:
      return (await v(2)).getUint16(0, true);
    case 4:
      return (await v(2)).getInt16(0, true);
    case 5:
      return (await v(4)).getUint32(0, true);
    case 6:
      return (await v(4)).getInt32(0, true);
    case 7:
      return (await v(4)).getFloat32(0, true);
    case 8:
      return (await v(1)).getUint8(0) !== 0;
    case 10:
      return Number((await v(8)).getBigUint64(0, true));
    case 11:
      return Number((await v(8)).getBigInt64(0, true));
    case 12:
      return (await v(8)).getFloat64(0, true);
    default:
      return null;
  }
}

/** KeyValuePair: key 0, value_type 1 (union tag), value 2. */
async function readItems(fb: FlatBufferReader, vectorAt: number | null): Promise<Record<string, LitertlmValue>> {
  const out = new Map<string, LitertlmValue>();
  if (vectorAt === null) return {};
  for (const kv of (await fb.tables(vectorAt, MAX_ITEMS)).tables) {
    const keyAt = await fb.field(kv, 0);
    const typeAt = await fb.field(kv, 1);
    const valueAt = await fb.field(kv, 2);
    if (keyAt === null || typeAt === null || valueAt === null) continue;
    const value = await readValue(fb, await fb.u8(typeAt), await fb.deref(valueAt));
    if (value !== null) out.set(await fb.string(keyAt, 256), value);
  }
  return Object.fromEntries(out);
}

/**
 * Reads a `.litertlm` file's header (its section table), never the sections. Refuses a header without sections, and
 * sections that start inside the header, end past the file, run backwards or overlap.
 */
export async function readLitertlmHeader(src: ByteSource, options: { signal?: AbortSignal } = {}): Promise<LitertlmHeader> {
  const { signal } = options;
  if (src.size < HEADER_BEGIN) throw new InvalidLiteRtError("file too small to be a .litertlm container");
  const prefix = await src.read(0, HEADER_BEGIN, signal);
  if (prefix.length < HEADER_BEGIN || !hasLitertlmMagic(prefix)) throw new InvalidLiteRtError("no LITERTLM magic at byte 0");
  const p = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const version = `${p.getUint32(8, true)}.${p.getUint32(12, true)}.${p.getUint32(16, true)}`;
  const headerEnd = Number(p.getBigUint64(24, true));
  if (headerEnd <= HEADER_BEGIN + 4 || headerEnd > src.size || headerEnd - HEADER_BEGIN > MAX_HEADER_BYTES) {
    throw new InvalidLiteRtError(`implausible .litertlm header end ${headerEnd}`);
  }
  const fb = new FlatBufferReader(src, { base: HEADER_BEGIN, length: headerEnd - HEADER_BEGIN, maxReadBytes: MAX_HEADER_BYTES, signal });
  const root = await fb.root();

  let systemMetadata: Record<string, LitertlmValue> = {};
  const systemAt = await fb.field(root, 0);
  if (systemAt !== null) systemMetadata = await readItems(fb, await fb.field(await fb.deref(systemAt), 0));

  const sections: LitertlmSection[] = [];
  const sectionMetaAt = await fb.field(root, 1);
  const objectsAt = sectionMetaAt === null ? null : await fb.field(await fb.deref(sectionMetaAt), 0);
  if (objectsAt !== null) {
    for (const s of (await fb.tables(objectsAt, MAX_ITEMS)).tables) {
      const beginAt = await fb.field(s, 1);
      const endAt = await fb.field(s, 2);
      const typeAt = await fb.field(s, 3);
      const type = typeAt === null ? 0 : await fb.u8(typeAt);
      sections.push({
        dataType: SECTION_TYPES[type] ?? `type${type}`,
        begin: beginAt === null ? 0 : await fb.u64(beginAt),
        end: endAt === null ? 0 : await fb.u64(endAt),
        items: await readItems(fb, await fb.field(s, 0)),
      });
    }
  }
  if (sections.length === 0) throw new InvalidLiteRtError(".litertlm header lists no sections");
  const ordered = [...sections].sort((a, b) => a.begin - b.begin);
  for (const [i, sec] of ordered.entries()) {
    if (sec.begin < headerEnd || sec.end < sec.begin || sec.end > src.size) {
      throw new InvalidLiteRtError(`.litertlm section ${sec.dataType} [${sec.begin}, ${sec.end}) lies outside the file's data (${headerEnd} to ${src.size})`);
    }
    const prev = ordered[i - 1];
    if (prev && sec.begin < prev.end) throw new InvalidLiteRtError(`.litertlm sections ${prev.dataType} and ${sec.dataType} overlap`);
  }
  return { version, headerEnd, systemMetadata, sections, bytesRead: prefix.length + fb.bytesRead };
}
