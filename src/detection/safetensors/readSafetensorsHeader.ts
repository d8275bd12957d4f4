import type { ByteSource } from "../gguf/ByteSource.js";

/**
 * A safetensors file that the reference loader would refuse (or that we refuse to read because it is absurd).
 * Detectors turn it into a warning; anything else thrown by the reader is an I/O or abort error.
 */
export class InvalidSafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidSafetensorsError";
  }
}

/** Bits per element of every dtype the safetensors format defines (sub-byte float formats included). */
export const SAFETENSORS_DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const satisfies Record<string, number>;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BITS;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Number of elements (product of the shape; 1 for a scalar). */
  elements: number;
  /** Byte range relative to the start of the data section, as written in the header. */
  dataOffsets: [number, number];
  /** Absolute byte offset of the tensor in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsDtypeStats {
  tensors: number;
  parameters: number;
  bytes: number;
}

export interface SafetensorsHeader {
  /** N, the JSON length written in the 8-byte prefix. */
  headerBytes: number;
  /** Where tensor data starts: 8 + N. */
  dataStart: number;
  /** Tensors ordered by their position in the file. */
  tensors: SafetensorsTensorInfo[];
  /** The string-to-string `__metadata__` map ({} when absent). */
  metadata: Record<string, string>;
  dtypes: Partial<Record<SafetensorsDtype, SafetensorsDtypeStats>>;
  /** Sum of the shape products of every tensor. */
  parameterCount: number;
}

interface ReadSafetensorsHeaderOptions {
  signal?: AbortSignal;
  /** Refuse headers larger than this (default 32 MiB, DEFAULT_MAX_SAFETENSORS_HEADER_BYTES). */
  maxHeaderBytes?: number;
}

/**
 * 32 MiB. The reference loader allows 100 MB, but parsing a header costs about 10x its size in memory and a second
 * per 30 MB; real checkpoints stay far below (a 160-shard MoE shard: a few hundred KB; 100k tensors in one file:
 * about 15 MB), so a bigger header is refused before it is parsed.
 */
export const DEFAULT_MAX_SAFETENSORS_HEADER_BYTES = 32 << 20;
/** No real tensor has this many dimensions; a longer shape is a corrupt or hostile header. */
const MAX_RANK = 64;
const METADATA_KEY = "__metadata__";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isDtype(v: unknown): v is SafetensorsDtype {
  return typeof v === "string" && Object.hasOwn(SAFETENSORS_DTYPE_BITS, v);
}

/** For messages: never stringifies a nested value, which could be deep enough to overflow the stack. */
function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object" && v !== null) return "an object";
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

interface RawTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  elements: number;
  begin: number;
  end: number;
}

function parseTensor(name: string, value: unknown, dataLength: number): RawTensor {
  const bad = (why: string): InvalidSafetensorsError => new InvalidSafetensorsError(`tensor ${describe(name)}: ${why}`);
  if (!isRecord(value)) throw bad("entry is not an object");
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype)) throw bad(`unknown dtype ${describe(dtype)}`);
  if (!Array.isArray(shape)) throw bad("shape is not an array");
  if (shape.length > MAX_RANK) throw bad(`shape has ${shape.length} dimensions`);
  let elements = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) throw bad(`invalid dimension ${describe(d)}`);
    // Multiplying in doubles would lose precision past 2^53: check before each step.
    if (d !== 0 && elements > Number.MAX_SAFE_INTEGER / d) throw bad("element count overflows");
    elements *= d;
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) throw bad("data_offsets is not a [begin, end] pair");
  const [begin, end] = offsets as unknown[];
  if (typeof begin !== "number" || typeof end !== "number" || !Number.isSafeInteger(begin) || !Number.isSafeInteger(end)) {
    throw bad(`data_offsets [${describe(begin)}, ${describe(end)}] are not integers`);
  }
  if (begin < 0 || end < begin) throw bad(`data_offsets [${begin}, ${end}] are not ordered`);
  if (end > dataLength) throw bad(`data_offsets end ${end} is past the ${dataLength}-byte data section`);
  // Plain numbers while the products stay exact (always, for real tensors); bigint past that.
  const dtypeBits = SAFETENSORS_DTYPE_BITS[dtype];
  if (elements <= 2 ** 46 && end - begin <= 2 ** 49) {
    if (elements * dtypeBits === (end - begin) * 8) return { name, dtype, shape: shape as number[], elements, begin, end };
  }
  const bits = BigInt(elements) * BigInt(dtypeBits);
  if (bits !== BigInt(end - begin) * 8n) {
    const need = bits % 8n === 0n ? `${bits / 8n} bytes` : `${bits} bits`;
    throw bad(`${dtype} [${shape.join(", ")}] needs ${need} but data_offsets span ${end - begin} bytes`);
  }
  return { name, dtype, shape: shape as number[], elements, begin, end };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (!isRecord(value)) throw new InvalidSafetensorsError(`${METADATA_KEY} is not an object`);
  const entries = Object.entries(value);
  for (const [k, v] of entries) {
    if (typeof v !== "string") throw new InvalidSafetensorsError(`${METADATA_KEY}.${describe(k)} is not a string`);
  }
  // fromEntries defines own properties, so a `__proto__` key stays plain data.
  return Object.fromEntries(entries) as Record<string, string>;
}

/**
 * Reads and validates a safetensors header: an 8-byte little-endian length N, then N bytes of JSON describing every
 * tensor. Two ranged reads (8 bytes, then N bytes), never more than the file holds, never any tensor data. Validation
 * follows the reference loader: tensors must tile the data section exactly, from 0 to the end of the file.
 */
export async function readSafetensorsHeader(src: ByteSource, options: ReadSafetensorsHeaderOptions = {}): Promise<SafetensorsHeader> {
  const { signal, maxHeaderBytes = DEFAULT_MAX_SAFETENSORS_HEADER_BYTES } = options;
  signal?.throwIfAborted();
  const size = src.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidSafetensorsError(`implausible file size ${size}`);
  if (size < 8) throw new InvalidSafetensorsError(`file is ${size} bytes, too small for a safetensors header`);

  const prefix = await src.read(0, 8, signal);
  if (prefix.length < 8) throw new InvalidSafetensorsError("file ended inside the header length");
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 === 0n) throw new InvalidSafetensorsError("header length is 0");
  if (n64 > BigInt(size - 8)) throw new InvalidSafetensorsError(`header length ${n64} is past the end of the ${size}-byte file`);
  if (n64 > BigInt(maxHeaderBytes)) {
    const mib = maxHeaderBytes % (1 << 20) === 0 ? ` (${maxHeaderBytes / (1 << 20)} MiB)` : "";
    throw new InvalidSafetensorsError(`header length ${n64} is over the ${maxHeaderBytes}-byte limit${mib}; real safetensors headers are far smaller`);
  }
  const n = Number(n64);

  const raw = await src.read(8, n, signal);
  if (raw.length < n) throw new InvalidSafetensorsError(`file ended inside the ${n}-byte header`);
  const bytes = raw.length === n ? raw : raw.subarray(0, n);
  if (bytes[0] !== 0x7b) throw new InvalidSafetensorsError("header does not start with '{'");

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidSafetensorsError("header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // Includes RangeError from pathological nesting: all of it is a bad file, not a crash.
    throw new InvalidSafetensorsError(`header is not valid JSON (${err instanceof Error ? err.message.slice(0, 120) : "parse error"})`);
  }
  if (!isRecord(json)) throw new InvalidSafetensorsError("header JSON is not an object");

  const dataStart = 8 + n;
  const dataLength = size - dataStart;
  let metadata: Record<string, string> = {};
  const raws: RawTensor[] = [];
  // Object.keys + lookup: Object.entries allocates a pair per key, which dominates on 100k-tensor headers.
  for (const name of Object.keys(json)) {
    if (name === METADATA_KEY) metadata = parseMetadata(json[name]);
    else raws.push(parseTensor(name, json[name], dataLength));
  }

  // Same rule as the reference loader: sorted by offset, each tensor starts where the previous one ended and the
  // last one ends at the end of the file (no gaps, overlaps, truncation or trailing bytes).
  raws.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let parameterCount = 0;
  const dtypes: Partial<Record<SafetensorsDtype, SafetensorsDtypeStats>> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const t of raws) {
    if (t.begin !== cursor) {
      throw new InvalidSafetensorsError(
        `tensor ${describe(t.name)} starts at ${t.begin} but the previous tensor ends at ${cursor} (${t.begin < cursor ? "overlap" : "gap"})`,
      );
    }
    cursor = t.end;
    parameterCount += t.elements;
    const stats = (dtypes[t.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    stats.tensors++;
    stats.parameters += t.elements;
    stats.bytes += t.end - t.begin;
    tensors.push({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      elements: t.elements,
      dataOffsets: [t.begin, t.end],
      fileOffset: dataStart + t.begin,
      byteLength: t.end - t.begin,
    });
  }
  if (cursor !== dataLength) {
    throw new InvalidSafetensorsError(`tensors cover ${cursor} bytes but the data section is ${dataLength} bytes (trailing or missing tensor data)`);
  }
  if (!Number.isSafeInteger(parameterCount)) throw new InvalidSafetensorsError("parameter count overflows");
  return { headerBytes: n, dataStart, tensors, metadata, dtypes, parameterCount };
}
