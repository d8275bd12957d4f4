import type { Writable } from "node:stream";
import { encodeFrames } from "./encodeFrames.js";

/** What the host sends: a reply `{id, ok, result | error}` or an event `{id, event, ...}`. */
export type HostMessage = { id: string | number | null } & Record<string, unknown>;

/**
 * Writes messages to the browser one whole frame at a time (never interleaved, parts of a split message in order),
 * honouring backpressure. Once the pipe is gone (the browser closed it), writes are dropped quietly.
 */
export class HostMessageWriter {
  readonly #out: Writable;
  readonly #maxBytes: number | undefined;
  #closed = false;
  #drained: Promise<void> = Promise.resolve();
  #batch: Buffer[] = [];
  #scheduled = false;

  constructor(out: Writable, options: { maxBytes?: number } = {}) {
    this.#out = out;
    this.#maxBytes = options.maxBytes;
    out.on("error", () => {
      this.#closed = true;
    });
    out.on("close", () => {
      this.#closed = true;
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues `message`; the promise settles once the stream can take more (at once, unless the browser is reading
   * slower than we write). Frames queued in one turn of the event loop (tokens that arrived in one TCP read) go out
   * in one write: one pipe write per burst instead of one per token.
   */
  send(message: HostMessage): Promise<void> {
    if (this.#closed) return Promise.resolve();
    for (const frame of encodeFrames(message, this.#maxBytes)) this.#batch.push(frame);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#writeBatch());
    }
    return this.#drained;
  }

  #writeBatch(): void {
    this.#scheduled = false;
    const frames = this.#batch;
    this.#batch = [];
    if (this.#closed || frames.length === 0) return;
    if (this.#out.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))) return;
    this.#drained = new Promise<void>((resolve) => {
      const done = () => {
        this.#out.off("drain", done);
        this.#out.off("close", done);
        this.#drained = Promise.resolve();
        resolve();
      };
      this.#out.once("drain", done);
      this.#out.once("close", done);
    });
  }

  /** Resolves once everything written so far has been flushed (or the pipe is gone). */
  flush(): Promise<void> {
    this.#writeBatch();
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#out.write(Buffer.alloc(0), () => resolve());
    });
  }
}
