import type { ByteSource } from "../gguf/ByteSource.js";
import { InvalidLiteRtError } from "./InvalidLiteRtError.js";

const BLOCK = 16 << 10;

interface FlatBufferReaderOptions {
  /** Where the FlatBuffer starts in the source (a `.litertlm` header starts at 32). */
  base?: number;
  /** Its length; defaults to the rest of the source. */
  length?: number;
  /** Bytes fetched, all reads together. */
  maxReadBytes?: number;
  /** Vector items and strings visited: a crafted buffer can point many offsets at one big vector. */
  maxVisits?: number;
  signal?: AbortSignal;
}

/**
 * Random access to a FlatBuffer through ranged reads, fetched in 16 KiB blocks and kept. Every offset is checked
 * against the buffer's length; positions are relative to `base`.
 */
export class FlatBufferReader {
  private readonly blocks = new Map<number, Uint8Array>();
  /** Checked vtables: table position → [vtable position, vtable length]. */
  private readonly vtables = new Map<number, [number, number]>();
  private readonly base: number;
  readonly length: number;
  private readonly maxReadBytes: number;
  private visitsLeft: number;
  bytesRead = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly options: FlatBufferReaderOptions = {},
  ) {
    this.base = options.base ?? 0;
    this.length = options.length ?? src.size - this.base;
    if (this.base < 0 || this.length < 0 || this.base + this.length > src.size) {
      throw new InvalidLiteRtError("FlatBuffer range lies outside the file");
    }
    this.maxReadBytes = options.maxReadBytes ?? 2 << 20;
    this.visitsLeft = options.maxVisits ?? 100_000;
  }

  private async block(i: number): Promise<Uint8Array> {
    const have = this.blocks.get(i);
    if (have) return have;
    const start = i * BLOCK;
    const len = Math.min(BLOCK, this.length - start);
    if (this.bytesRead + len > this.maxReadBytes) {
      throw new InvalidLiteRtError(`reading the FlatBuffer needs more than ${this.maxReadBytes} bytes`, "limit");
    }
    this.options.signal?.throwIfAborted();
    const b = await this.src.read(this.base + start, len, this.options.signal);
    if (b.length < len) throw new InvalidLiteRtError("FlatBuffer truncated");
    this.bytesRead += b.length;
    this.blocks.set(i, b);
    return b;
  }

  /** Bytes [pos, pos + n), bounds-checked. */
  async bytes(pos: number, n: number): Promise<Uint8Array> {
    if (!Number.isInteger(pos) || pos < 0 || n < 0 || pos + n > this.length) {
      throw new InvalidLiteRtError(`FlatBuffer offset ${pos} (+${n}) is outside the buffer (${this.length} bytes)`);
    }
    const first = Math.floor(pos / BLOCK);
    const last = Math.floor((pos + Math.max(n, 1) - 1) / BLOCK);
    if (first === last) {
      const b = await this.block(first);
      return b.subarray(pos - first * BLOCK, pos - first * BLOCK + n);
    }
    const out = new Uint8Array(n);
    for (let i = first; i <= last; i++) {
      const b = await this.block(i);
      const from = Math.max(pos, i * BLOCK);
      const to = Math.min(pos + n, i * BLOCK + b.length);
      out.set(b.subarray(from - i * BLOCK, to - i * BLOCK), from - pos);
    }
    return out;
  }

  private async view(pos: number, n: number): Promise<DataView> {
    const b = await this.bytes(pos, n);
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  async u8(pos: number): Promise<number> {
    return (await this.view(pos, 1)).getUint8(0);
  }

  async u16(pos: number): Promise<number> {
    return (await this.view(pos, 2)).getUint16(0, true);
  }

  async u32(pos: number): Promise<number> {
    return (await this.view(pos, 4)).getUint32(0, true);
  }

  async i32(pos: number): Promise<number> {
    return (await this.view(pos, 4)).getInt32(0, true);
  }

  async u64(pos: number): Promise<number> {
    return Number((await this.view(pos, 8)).getBigUint64(0, true));
  }

  /** Follows a uoffset stored at `pos`. */
  async deref(pos: number): Promise<number> {
    return pos + (await this.u32(pos));
  }

  /** The root table. */
  async root(): Promise<number> {
    return this.deref(0);
  }

  /**
   * A 4-byte value without fetching a whole block: for lengths of vectors scattered over a large file (one per
   * weight buffer), where a 16 KiB block each would blow the read budget.
   */
  async peekU32(pos: number): Promise<number> {
    const i = Math.floor(pos / BLOCK);
    if (this.blocks.has(i) || !Number.isInteger(pos) || pos < 0 || pos + 4 > this.length) return this.u32(pos);
    if (this.bytesRead + 4 > this.maxReadBytes) throw new InvalidLiteRtError(`reading the FlatBuffer needs more than ${this.maxReadBytes} bytes`, "limit");
    this.options.signal?.throwIfAborted();
    const b = await this.src.read(this.base + pos, 4, this.options.signal);
    if (b.length < 4) throw new InvalidLiteRtError("FlatBuffer truncated");
    this.bytesRead += 4;
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /**
   * Checks the table at `table` the way the FlatBuffers verifier does (aligned, its vtable inside the buffer, even
   * and at least 4 bytes, the table's inline size inside the buffer, every field inside the table) and returns its
   * vtable. Checked once per table.
   */
  private async vtable(table: number): Promise<[number, number]> {
    const known = this.vtables.get(table);
    if (known) return known;
    if (table % 4 !== 0) throw new InvalidLiteRtError(`FlatBuffer table at ${table} is not 4-byte aligned`);
    const vtable = table - (await this.i32(table));
    if (vtable % 2 !== 0) throw new InvalidLiteRtError(`FlatBuffer vtable at ${vtable} is not 2-byte aligned`);
    const vtableLength = await this.u16(vtable);
    const objectSize = await this.u16(vtable + 2);
    if (vtableLength < 4 || vtableLength % 2 !== 0) throw new InvalidLiteRtError(`FlatBuffer vtable at ${vtable} has a bad length ${vtableLength}`);
    if (objectSize < 4 || table + objectSize > this.length) throw new InvalidLiteRtError(`FlatBuffer table at ${table} of ${objectSize} bytes overruns the buffer`);
    const entries = await this.bytes(vtable + 4, vtableLength - 4);
    const ev = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
    for (let o = 0; o + 2 <= entries.length; o += 2) {
      if (ev.getUint16(o, true) >= objectSize) throw new InvalidLiteRtError(`FlatBuffer table at ${table}: field ${o / 2} lies outside the table`);
    }
    const v: [number, number] = [vtable, vtableLength];
    this.vtables.set(table, v);
    return v;
  }

  /** Position of field `slot` of the table at `table`, or null when the field is absent. */
  async field(table: number, slot: number): Promise<number | null> {
    const [vtable, vtableLength] = await this.vtable(table);
    const entry = 4 + 2 * slot;
    if (entry + 2 > vtableLength) return null;
    const off = await this.u16(vtable + entry);
    return off === 0 ? null : table + off;
  }

  /** The item count of the vector field at `pos`, its bounds checked; only its length is read. */
  async vectorLength(pos: number, itemSize: number): Promise<number> {
    const v = await this.deref(pos);
    if (v % 4 !== 0) throw new InvalidLiteRtError(`FlatBuffer vector at ${v} is not 4-byte aligned`);
    const count = await this.peekU32(v);
    if (v + 4 + count * itemSize > this.length) throw new InvalidLiteRtError(`FlatBuffer vector of ${count} items overruns the buffer`);
    return count;
  }

  private visit(n: number): void {
    this.visitsLeft -= n;
    if (this.visitsLeft < 0) throw new InvalidLiteRtError("FlatBuffer visits too many items (repeated offsets?)", "limit");
  }

  /** Positions of a vector's items (`itemSize` bytes each) for the vector field at `pos`, at most `max`. */
  async vector(pos: number, itemSize: number, max: number): Promise<{ count: number; items: number[] }> {
    const v = await this.deref(pos);
    if (v % 4 !== 0) throw new InvalidLiteRtError(`FlatBuffer vector at ${v} is not 4-byte aligned`);
    const count = await this.u32(v);
    if (v + 4 + count * itemSize > this.length) throw new InvalidLiteRtError(`FlatBuffer vector of ${count} items overruns the buffer`);
    const n = Math.min(count, max);
    this.visit(n);
    return { count, items: Array.from({ length: n }, (_, i) => v + 4 + i * itemSize) };
  }

  /** The items of a vector of tables (each item a uoffset to its table). */
  async tables(pos: number, max: number): Promise<{ count: number; tables: number[] }> {
    const { count, items } = await this.vector(pos, 4, max);
    const tables: number[] = [];
    for (const p of items) tables.push(await this.deref(p));
    return { count, tables };
  }

  /** The string field at `pos`; longer than `max` bytes is cut to `max`. */
  async string(pos: number, max = 4096): Promise<string> {
    const s = await this.deref(pos);
    const len = await this.u32(s);
    if (s + 4 + len > this.length) throw new InvalidLiteRtError(`FlatBuffer string of ${len} bytes overruns the buffer`);
    this.visit(1);
    return new TextDecoder("utf-8", { fatal: false }).decode(await this.bytes(s + 4, Math.min(len, max)));
  }
}
