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

  /** Queues `message`; the promise settles once the stream has taken it (resolves also when the pipe is gone). */
  send(message: HostMessage): Promise<void> {
    if (this.#closed) return Promise.resolve();
    let ok = true;
    for (const frame of encodeFrames(message, this.#maxBytes)) ok = this.#out.write(frame) && ok;
    if (!ok) {
      this.#drained = new Promise<void>((resolve) => {
        const done = () => {
          this.#out.off("drain", done);
          this.#out.off("close", done);
          resolve();
        };
        this.#out.once("drain", done);
        this.#out.once("close", done);
      });
    }
    return this.#drained;
  }

  /** Resolves once everything written so far has been flushed (or the pipe is gone). */
  flush(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#out.write(Buffer.alloc(0), () => resolve());
    });
  }
}
