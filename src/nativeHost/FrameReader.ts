import { endianness } from "node:os";

/** What the reader found in the byte stream, in order. */
export type FrameEvent =
  | { kind: "frame"; body: Buffer }
  /** A frame whose announced length is over the cap: its bytes are skipped, never buffered. */
  | { kind: "oversize"; length: number };

const LITTLE = endianness() === "LE";

/** Reads the 32-bit length prefix in the machine's byte order, as browsers write it. */
export function readLength(header: Buffer): number {
  return LITTLE ? header.readUInt32LE(0) : header.readUInt32BE(0);
}

/**
 * Splits the browser's byte stream into native-messaging frames (a 32-bit native-order length, then that many
 * bytes). Incremental: `push` any chunking of the stream; `end` says whether a partial frame was left over.
 */
export class FrameReader {
  readonly #maxBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes of an oversize frame still to be skipped. */
  #skip = 0;
  /** The current frame's announced length, once its header is read. */
  #length: number | null = null;

  get maxBytes(): number {
    return this.#maxBytes;
  }

  constructor(options: { maxBytes: number }) {
    this.#maxBytes = options.maxBytes;
  }

  push(chunk: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let data = chunk;
    while (data.length > 0) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, data.length);
        this.#skip -= n;
        data = data.subarray(n);
        continue;
      }
      const want = this.#length === null ? 4 : this.#length;
      const take = Math.min(want - this.#pendingBytes, data.length);
      this.#pending.push(data.subarray(0, take));
      this.#pendingBytes += take;
      data = data.subarray(take);
      if (this.#pendingBytes < want) break;
      const whole = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
      if (this.#length === null) {
        const length = readLength(whole);
        if (length > this.#maxBytes) {
          events.push({ kind: "oversize", length });
          this.#skip = length;
        } else if (length === 0) events.push({ kind: "frame", body: Buffer.alloc(0) });
        else this.#length = length;
      } else {
        // A copy: the chunk the body was sliced from may be a pooled buffer.
        events.push({ kind: "frame", body: Buffer.from(whole) });
        this.#length = null;
      }
    }
    return events;
  }

  /** At the end of the stream: how a frame was cut short, or null when the stream ended between frames. */
  end(): { expected: number; received: number } | null {
    if (this.#skip > 0) return null;
    if (this.#length !== null) return { expected: this.#length, received: this.#pendingBytes };
    if (this.#pendingBytes > 0) return { expected: 4, received: this.#pendingBytes };
    return null;
  }
}
