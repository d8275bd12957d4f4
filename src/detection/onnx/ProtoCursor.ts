import type { ByteSource } from "../gguf/ByteSource.js";

type InvalidOnnxCode = "truncated" | "bad-varint" | "bad-length" | "bad-tag" | "too-deep" | "limit" | "not-onnx";

export class InvalidOnnxError extends Error {
  constructor(
    message: string,
    readonly code: InvalidOnnxCode,
  ) {
    super(message);
    this.name = "InvalidOnnxError";
  }
}

export const Wire = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

export interface ProtoLimits {
  /** Bytes actually fetched from the source, all reads together. */
  maxReadBytes: number;
  /** Field tags decoded, all messages together. */
  maxFields: number;
  /** Message nesting depth. */
  maxDepth: number;
}

/** Reads after a jump start small (a skipped tensor lands us anywhere); sequential reads grow. */
const JUMP_CHUNK = 1 << 10;
const MAX_CHUNK = 256 << 10;
const MAX_FIELD_NUMBER = (1 << 29) - 1;

/**
 * A protobuf wire-format cursor over ranged reads. Skipping a length-delimited field only moves `pos`, so a
 * multi-GB initializer costs nothing; every fetch counts against `maxReadBytes`.
 */
export class ProtoCursor {
  pos = 0;
  bytesRead = 0;
  reads = 0;
  fieldsVisited = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private chunk = JUMP_CHUNK;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(
    private readonly src: ByteSource,
    readonly limits: ProtoLimits,
    private readonly signal?: AbortSignal,
  ) {}

  get size(): number {
    return this.src.size;
  }

  /** Makes [pos, pos + n) available in `buf`; n must not pass the end of data. */
  private async ensure(n: number): Promise<void> {
    const bufEnd = this.bufStart + this.buf.length;
    if (this.pos >= this.bufStart && this.pos + n <= bufEnd) return;
    const sequential = this.pos >= this.bufStart && this.pos <= bufEnd && this.buf.length > 0;
    this.chunk = sequential ? Math.min(this.chunk * 2, MAX_CHUNK) : JUMP_CHUNK;
    let len = Math.min(Math.max(n, this.chunk), this.src.size - this.pos);
    const left = this.limits.maxReadBytes - this.bytesRead;
    if (len > left) len = Math.max(n, left);
    if (len > left) {
      throw new InvalidOnnxError(`reading the ONNX graph needs more than ${this.limits.maxReadBytes} bytes`, "limit");
    }
    this.signal?.throwIfAborted();
    const got = await this.src.read(this.pos, len, this.signal);
    this.reads++;
    this.bytesRead += got.length;
    if (got.length < n) throw new InvalidOnnxError(`unexpected end of file at byte ${this.pos + got.length}`, "truncated");
    this.buf = got;
    this.bufStart = this.pos;
  }

  /** True when [pos, end) is in the current window: the *Sync readers may then be used up to `end`. */
  buffered(end: number): boolean {
    return this.pos >= this.bufStart && end <= this.bufStart + this.buf.length;
  }

  /** A varint as a JS number (exact below 2^53; negative int64 comes back as its signed value). */
  async varint(end: number): Promise<number> {
    const avail = Math.min(10, end - this.pos);
    if (avail <= 0) throw new InvalidOnnxError(`unexpected end of message at byte ${this.pos}`, "truncated");
    await this.ensure(avail);
    return this.varintSync(end);
  }

  /** `varint` over the window; only after `buffered(end)` or `ensure`. */
  varintSync(end: number): number {
    const avail = Math.min(10, end - this.pos);
    if (avail <= 0) throw new InvalidOnnxError(`unexpected end of message at byte ${this.pos}`, "truncated");
    const o = this.pos - this.bufStart;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < avail; i++) {
      const b = this.buf[o + i]!;
      if (i === 9 && b > 1) throw new InvalidOnnxError(`varint at byte ${this.pos} overflows 64 bits`, "bad-varint");
      result += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) {
        this.pos += i + 1;
        // Ten bytes means a negative int64 (two's complement); recompute exactly.
        return i === 9 ? Number(BigInt.asIntN(64, this.bigVarint(o, i + 1))) : result;
      }
    }
    if (avail < 10) throw new InvalidOnnxError(`varint at byte ${this.pos} runs past the end of its message`, "truncated");
    throw new InvalidOnnxError(`varint at byte ${this.pos} is longer than 10 bytes`, "bad-varint");
  }

  private bigVarint(o: number, n: number): bigint {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 7n) | BigInt(this.buf[o + i]! & 0x7f);
    return v;
  }

  /** A field key; counts against `maxFields`. */
  async tag(end: number): Promise<{ field: number; wire: number }> {
    const avail = Math.min(10, end - this.pos);
    if (avail > 0) await this.ensure(avail);
    const key = this.tagSync(end);
    return { field: Math.floor(key / 8), wire: key % 8 };
  }

  /** The key of the next field (field * 8 + wire), checked; counts against `maxFields`. Only over the window. */
  tagSync(end: number): number {
    if (++this.fieldsVisited > this.limits.maxFields) {
      throw new InvalidOnnxError(`the ONNX file has more than ${this.limits.maxFields} fields to visit`, "limit");
    }
    const at = this.pos;
    const key = this.varintSync(end);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field < 1 || field > MAX_FIELD_NUMBER) throw new InvalidOnnxError(`invalid field number ${field} at byte ${at}`, "bad-tag");
    if (wire !== Wire.VARINT && wire !== Wire.I64 && wire !== Wire.LEN && wire !== Wire.I32) {
      // Groups (3, 4) are deprecated and unused by ONNX; 6 and 7 do not exist.
      throw new InvalidOnnxError(`unsupported wire type ${wire} (field ${field}) at byte ${at}`, "bad-tag");
    }
    return key;
  }

  /** `lengthEnd` over the window. */
  lengthEndSync(end: number): number {
    const at = this.pos;
    const len = this.varintSync(end);
    if (len < 0 || this.pos + len > end) {
      throw new InvalidOnnxError(`length ${len} at byte ${at} runs past the end of its message (byte ${end})`, "bad-length");
    }
    return this.pos + len;
  }

  /** `skip` over the window. */
  skipSync(wire: number, end: number): number {
    if (wire === Wire.VARINT) {
      this.varintSync(end);
      return 0;
    }
    const n = wire === Wire.LEN ? this.lengthEndSync(end) - this.pos : wire === Wire.I64 ? 8 : 4;
    if (this.pos + n > end) throw new InvalidOnnxError(`fixed-width value at byte ${this.pos} runs past its message`, "bad-length");
    this.pos += n;
    return n;
  }

  /** `stringOrSkip` over the window. */
  stringOrSkipSync(end: number, maxBytes: number): string | null {
    const to = this.lengthEndSync(end);
    const n = to - this.pos;
    if (n > maxBytes) {
      this.pos = to;
      return null;
    }
    const o = this.pos - this.bufStart;
    const s = n === 0 ? "" : this.decoder.decode(this.buf.subarray(o, o + n));
    this.pos = to;
    return s;
  }

  /** The length prefix of a LEN field; returns the end offset of its payload, checked against `end`. */
  async lengthEnd(end: number): Promise<number> {
    const at = this.pos;
    const len = await this.varint(end);
    if (len < 0 || this.pos + len > end) {
      throw new InvalidOnnxError(`length ${len} at byte ${at} runs past the end of its message (byte ${end})`, "bad-length");
    }
    return this.pos + len;
  }

  /** Skips a value without reading it (LEN payloads are skipped by offset). */
  async skip(wire: number, end: number): Promise<number> {
    let n: number;
    if (wire === Wire.VARINT) {
      await this.varint(end);
      return 0;
    }
    if (wire === Wire.LEN) {
      const to = await this.lengthEnd(end);
      n = to - this.pos;
    } else n = wire === Wire.I64 ? 8 : 4;
    if (this.pos + n > end) throw new InvalidOnnxError(`fixed-width value at byte ${this.pos} runs past its message`, "bad-length");
    this.pos += n;
    return n;
  }

  /** A LEN field's payload as UTF-8; `maxBytes` bounds what a hostile length can make us read. */
  async string(end: number, maxBytes: number): Promise<string> {
    const to = await this.lengthEnd(end);
    const n = to - this.pos;
    if (n > maxBytes) throw new InvalidOnnxError(`string of ${n} bytes at byte ${this.pos} exceeds ${maxBytes}`, "limit");
    if (n === 0) return "";
    await this.ensure(n);
    const o = this.pos - this.bufStart;
    const s = this.decoder.decode(this.buf.subarray(o, o + n));
    this.pos = to;
    return s;
  }

  /** Like `string`, but a payload over `maxBytes` is skipped (null) instead of failing. */
  async stringOrSkip(end: number, maxBytes: number): Promise<string | null> {
    const at = this.pos;
    const to = await this.lengthEnd(end);
    if (to - this.pos > maxBytes) {
      this.pos = to;
      return null;
    }
    this.pos = at;
    return this.string(end, maxBytes);
  }

  checkDepth(depth: number): void {
    if (depth > this.limits.maxDepth) {
      throw new InvalidOnnxError(`messages nested deeper than ${this.limits.maxDepth}`, "too-deep");
    }
  }

  /**
   * Visits every field of the message ending at `end`; `visit` consumes the value and returns true, or returns
   * false to have it skipped. The message must end exactly at `end`.
   */
  async message(end: number, depth: number, visit: (field: number, wire: number) => Promise<boolean>): Promise<void> {
    this.checkDepth(depth);
    while (this.pos < end) {
      const { field, wire } = await this.tag(end);
      if (!(await visit(field, wire))) await this.skip(wire, end);
    }
    if (this.pos !== end) throw new InvalidOnnxError(`message overruns its end (byte ${end})`, "bad-length");
  }

  /** Throws unless a known field has the wire type the schema gives it. */
  expect(field: number, wire: number, expected: number, where: string): void {
    if (wire !== expected) {
      throw new InvalidOnnxError(`${where} field ${field} has wire type ${wire}, expected ${expected}`, "bad-tag");
    }
  }
}
