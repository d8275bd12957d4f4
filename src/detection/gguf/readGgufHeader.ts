import type { ByteSource } from "./ByteSource.js";
import { GgufTokenScan } from "./GgufTokenScan.js";

export class InvalidGgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidGgufError";
  }
}

export type GgufScalar = number | bigint | boolean | string;
/** Long arrays (token lists) are summarised, not kept: detection never needs their items. */
export interface GgufArraySummary {
  arrayType: number;
  length: number;
  items: GgufScalar[] | null;
}
export type GgufValue = GgufScalar | GgufArraySummary;

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  /** ggml type id; ids mainline ggml does not define are kept as they are (BitNet forks use them). */
  type: number;
  offset: bigint;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  /** Each key's GGUF value type (9 = array): llama.cpp refuses a key of the wrong type, so validation checks it. */
  types: Map<string, number>;
  tensors: GgufTensorInfo[];
  /** Bytes taken by the header (metadata + tensor infos), before alignment padding. */
  headerBytes: number;
  /** `general.alignment`, or the default 32. */
  alignment: number;
  /** Where tensor data starts: the header rounded up to the alignment. */
  dataStart: number;
  /** `tokenizer.ggml.tokens` streamed and checked, when `scanTokens` was asked for and the array is there. */
  tokens: GgufTokenScan | null;
}

interface ReadGgufHeaderOptions {
  signal?: AbortSignal;
  /** Arrays up to this length keep their items. */
  maxArrayItems?: number;
  /** Refuse headers larger than this (a corrupt count must not make us read gigabytes). */
  maxHeaderBytes?: number;
  /** Stream `tokenizer.ggml.tokens` through a GgufTokenScan (no extra reads: the strings are read to skip them anyway). */
  scanTokens?: boolean;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const CHUNK = 1 << 20;
const MAX_STRING = 64 << 20;

/** ggml's GGML_MAX_DIMS and GGML_MAX_NAME: gguf.cpp refuses more dimensions or longer tensor names. */
const MAX_DIMS = 4;
const MAX_TENSOR_NAME = 64;
const GGUF_DEFAULT_ALIGNMENT = 32;
const TOKENS_KEY = "tokenizer.ggml.tokens";

const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Sequential little-endian reader over a ByteSource that fetches in 1 MiB windows. */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private bufStart = 0;
  pos = 0;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(
    private readonly src: ByteSource,
    private readonly maxBytes: number,
    private readonly signal?: AbortSignal,
  ) {}

  private async need(n: number): Promise<void> {
    if (this.pos + n > this.maxBytes) throw new InvalidGgufError(`GGUF header exceeds ${this.maxBytes} bytes`);
    const end = this.bufStart + this.buf.length;
    if (this.pos >= this.bufStart && this.pos + n <= end) return;
    const chunk = await this.src.read(this.pos, Math.max(n, CHUNK), this.signal);
    if (chunk.length < n) throw new InvalidGgufError("unexpected end of file inside the GGUF header");
    this.buf = chunk;
    this.view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.bufStart = this.pos;
  }

  private off(): number {
    return this.pos - this.bufStart;
  }

  async u32(): Promise<number> {
    await this.need(4);
    const v = this.view.getUint32(this.off(), true);
    this.pos += 4;
    return v;
  }

  async u64(): Promise<bigint> {
    await this.need(8);
    const v = this.view.getBigUint64(this.off(), true);
    this.pos += 8;
    return v;
  }

  /** Bytes left before the end of the file or the header cap, whichever comes first. */
  remaining(): number {
    return Math.min(this.src.size, this.maxBytes) - this.pos;
  }

  /**
   * A count read from the file. Each counted item takes at least `minItemBytes`, so a count that could not fit in
   * what is left of the file is refused before anything loops over it.
   */
  async count(what: string, max: number, minItemBytes = 1): Promise<number> {
    const v = await this.u64();
    if (v > BigInt(max) || Number(v) * minItemBytes > this.remaining()) {
      throw new InvalidGgufError(`implausible ${what}: ${v} (the file has ${Math.max(0, this.remaining())} bytes left)`);
    }
    return Number(v);
  }

  async string(): Promise<string> {
    const len = await this.count("string length", MAX_STRING);
    if (len === 0) return "";
    await this.need(len);
    const s = this.decoder.decode(this.buf.subarray(this.off(), this.off() + len));
    this.pos += len;
    return s;
  }

  async skipString(): Promise<void> {
    const len = await this.count("string length", MAX_STRING);
    this.pos += len;
  }

  /**
   * Skips `n` length-prefixed strings. A tokenizer holds 30k-300k of them (tokens, merges): while the current
   * window holds the next length prefix, strings are stepped over without a promise; only a refill awaits.
   */
  async skipStrings(n: number): Promise<void> {
    const limit = Math.min(this.src.size, this.maxBytes);
    let i = 0;
    while (i < n) {
      const base = this.bufStart;
      const end = base + this.buf.length;
      const b = this.buf;
      let pos = this.pos;
      if (pos >= base) {
        while (i < n && pos + 8 <= end) {
          const o = pos - base;
          // Byte reads: faster than DataView here. A length of 2^24 or more takes the checked path below.
          if ((b[o + 3]! | b[o + 4]! | b[o + 5]! | b[o + 6]! | b[o + 7]!) !== 0) break;
          const len = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);
          if (pos + 8 + len > limit) break; // the slow path below throws the error
          pos += 8 + len;
          i++;
        }
      }
      this.pos = pos;
      if (i < n) {
        await this.skipString(); // refills the window (or throws on an implausible length)
        i++;
      }
    }
  }

  /**
   * Calls `visit` with each of `n` length-prefixed strings as bytes `buf[start, end)` (valid only during the call).
   * Same window walking as `skipStrings`: a vocabulary of 150k tokens costs no promise per token.
   */
  async eachString(n: number, visit: (buf: Uint8Array, start: number, end: number, index: number) => void): Promise<void> {
    const limit = Math.min(this.src.size, this.maxBytes);
    let i = 0;
    while (i < n) {
      const base = this.bufStart;
      const end = base + this.buf.length;
      const b = this.buf;
      let pos = this.pos;
      if (pos >= base) {
        while (i < n && pos + 8 <= end) {
          const o = pos - base;
          if ((b[o + 3]! | b[o + 4]! | b[o + 5]! | b[o + 6]! | b[o + 7]!) !== 0) break;
          const len = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);
          if (pos + 8 + len > end || pos + 8 + len > limit) break;
          visit(b, o + 8, o + 8 + len, i);
          pos += 8 + len;
          i++;
        }
      }
      this.pos = pos;
      if (i < n) {
        // The next string is not wholly in the window (or is long): its length, checked, then a refill around it.
        const len = await this.count("string length", MAX_STRING);
        await this.need(len);
        visit(this.buf, this.off(), this.off() + len, i);
        this.pos += len;
        i++;
      }
    }
  }

  async scalar(type: number): Promise<GgufScalar> {
    const size = SCALAR_SIZE[type];
    if (size === undefined) throw new InvalidGgufError(`unknown metadata value type ${type}`);
    await this.need(size);
    const o = this.off();
    const v = this.view;
    this.pos += size;
    switch (type) {
      case T.U8:
        return v.getUint8(o);
      case T.I8:
        return v.getInt8(o);
      case T.U16:
        return v.getUint16(o, true);
      case T.I16:
        return v.getInt16(o, true);
      case T.U32:
        return v.getUint32(o, true);
      case T.I32:
        return v.getInt32(o, true);
      case T.F32:
        return v.getFloat32(o, true);
      case T.BOOL:
        return v.getUint8(o) !== 0;
      case T.U64:
        return v.getBigUint64(o, true);
      case T.I64:
        return v.getBigInt64(o, true);
      default:
        return v.getFloat64(o, true);
    }
  }
}

async function readValue(c: Cursor, type: number, maxArrayItems: number, scan: GgufTokenScan | null): Promise<GgufValue> {
  if (type === T.STRING) return c.string();
  if (type !== T.ARRAY) return c.scalar(type);
  const arrayType = await c.u32();
  if (arrayType === T.ARRAY) throw new InvalidGgufError("nested metadata arrays are not supported");
  if (arrayType !== T.STRING && SCALAR_SIZE[arrayType] === undefined) throw new InvalidGgufError(`unknown array item type ${arrayType}`);
  const length = await c.count("array length", 1 << 30, arrayType === T.STRING ? 8 : SCALAR_SIZE[arrayType]!);
  const keep = length <= maxArrayItems;
  const items: GgufScalar[] = [];
  if (arrayType === T.STRING) {
    const at = c.pos;
    if (scan) await c.eachString(length, (buf, start, end, i) => scan.add(buf, start, end, i));
    if (keep) {
      c.pos = at;
      for (let i = 0; i < length; i++) items.push(await c.string());
    } else if (!scan) await c.skipStrings(length);
  } else {
    const size = SCALAR_SIZE[arrayType]!;
    if (keep) for (let i = 0; i < length; i++) items.push(await c.scalar(arrayType));
    else c.pos += size * length;
  }
  return { arrayType, length, items: keep ? items : null };
}

/**
 * Parses a GGUF (v2/v3) header: metadata and tensor infos, never tensor data. Refuses what ggml's own reader
 * (gguf.cpp) refuses: empty or repeated keys, a `general.alignment` that is not a u32 power of two, more than 4
 * dimensions, tensor names of 64 bytes or more, repeated tensor names, negative or overflowing shapes.
 */
export async function readGgufHeader(src: ByteSource, options: ReadGgufHeaderOptions = {}): Promise<GgufHeader> {
  const { signal, maxArrayItems = 64, maxHeaderBytes = 512 << 20, scanTokens = false } = options;
  const c = new Cursor(src, maxHeaderBytes, signal);
  if (src.size < 24) throw new InvalidGgufError("file too small to be GGUF");
  const magic = await c.u32();
  if (magic !== GGUF_MAGIC) throw new InvalidGgufError("not a GGUF file (bad magic)");
  const version = await c.u32();
  if (version < 2 || version > 3) throw new InvalidGgufError(`unsupported GGUF version ${version}`);
  // A tensor info takes at least 8 (name) + 4 (dims) + 4 (type) + 8 (offset) bytes; a key/value at least 8 + 4 + 1.
  const tensorCount = await c.count("tensor count", 1 << 24, 24);
  const kvCount = await c.count("metadata count", 1 << 20, 13);

  const metadata = new Map<string, GgufValue>();
  const types = new Map<string, number>();
  let tokens: GgufTokenScan | null = null;
  for (let i = 0; i < kvCount; i++) {
    const key = await c.string();
    if (key === "") throw new InvalidGgufError(`metadata key ${i} is empty`);
    if (metadata.has(key)) throw new InvalidGgufError(`metadata key ${key} appears twice`);
    const type = await c.u32();
    const scan = scanTokens && key === TOKENS_KEY && type === T.ARRAY ? new GgufTokenScan() : null;
    metadata.set(key, await readValue(c, type, maxArrayItems, scan));
    types.set(key, type);
    if (scan) tokens = scan;
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (types.get("general.alignment") !== T.U32 || typeof a !== "number") {
      throw new InvalidGgufError("general.alignment must be a uint32");
    }
    if (a === 0 || (a & (a - 1)) !== 0) throw new InvalidGgufError(`general.alignment ${a} is not a power of two`);
    alignment = a;
  }

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.string();
    if (Buffer.byteLength(name) >= MAX_TENSOR_NAME)
      throw new InvalidGgufError(`tensor ${i} has a name of ${Buffer.byteLength(name)} bytes (ggml allows ${MAX_TENSOR_NAME - 1})`);
    if (names.has(name)) throw new InvalidGgufError(`tensor name ${name} appears twice`);
    names.add(name);
    const nDims = await c.u32();
    if (nDims > MAX_DIMS) throw new InvalidGgufError(`tensor ${name} has ${nDims} dimensions (ggml allows ${MAX_DIMS})`);
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const dim = await c.u64();
      // gguf.cpp reads dimensions as int64: the top half of the u64 range is negative there.
      if (dim > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidGgufError(`tensor ${name} has an implausible dimension ${dim}`);
      dims.push(Number(dim));
      elements *= Number(dim);
    }
    if (elements > Number.MAX_SAFE_INTEGER) throw new InvalidGgufError(`tensor ${name} has an implausible shape [${dims.join(", ")}]`);
    const type = await c.u32();
    const offset = await c.u64();
    tensors.push({ name, dims, type, offset });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  for (const t of tensors) {
    if (t.offset + BigInt(dataStart) > BigInt(src.size)) {
      throw new InvalidGgufError(`tensor ${t.name} starts at byte ${t.offset + BigInt(dataStart)}, past the end of the ${src.size}-byte file (truncated?)`);
    }
  }
  return { version, metadata, types, tensors, headerBytes: c.pos, alignment, dataStart, tokens };
}
