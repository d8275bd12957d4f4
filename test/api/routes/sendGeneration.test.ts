import { Writable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { describe, expect, it } from "vitest";
import { chatFormatter } from "../../../src/api/openai/responseFormatters.js";
import { sendGeneration } from "../../../src/api/routes/sendGeneration.js";
import type { GenerationChunk } from "../../../src/core/types.js";

/** A client that never reads: the socket accepts a little, then reports backpressure forever. */
class StalledResponse extends Writable {
  headers: unknown = null;
  constructor() {
    super({ highWaterMark: 1024 });
  }
  writeHead(_status: number, headers: unknown) {
    this.headers = headers;
    return this;
  }
  override _write(_chunk: unknown, _enc: string, _cb: () => void) {
    // never completes: like a TCP peer with a full receive window
  }
}

describe("sendGeneration with a client that does not read", () => {
  it("stops pulling from the engine instead of buffering the whole answer", async () => {
    let produced = 0;
    async function* engine(): AsyncGenerator<GenerationChunk> {
      for (let i = 0; i < 100_000; i++) {
        produced++;
        yield { type: "text", index: 0, text: `token ${i} ` };
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      yield { type: "finish", index: 0, reason: "length" };
    }
    const raw = new StalledResponse();
    const reply = { raw, hijack() {} } as unknown as FastifyReply;
    const request = { id: "r1", log: { info() {}, error() {} } } as unknown as FastifyRequest;
    const done = sendGeneration({ request, reply, chunks: engine(), formatter: chatFormatter({ model: "m", includeUsage: false }), stream: true, includeUsage: false });
    await new Promise((r) => setTimeout(r, 300));
    const stalledAt = produced;
    await new Promise((r) => setTimeout(r, 300));
    expect(produced).toBe(stalledAt); // nothing more is generated while the client does not read
    expect(produced).toBeLessThan(500); // the read-ahead window, not the answer
    expect(raw.writableLength).toBeLessThan(64 * 1024);
    raw.destroy(); // the client goes away
    await done;
    expect(produced).toBeLessThan(500);
  });
});
