import { Writable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { describe, expect, it } from "vitest";
import { chatFormatter, completionFormatter } from "../../../src/api/openai/responseFormatters.js";
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

/** A response that keeps everything written, for reading the SSE back. */
class RecordingResponse extends Writable {
  body = "";
  writeHead() {
    return this;
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.body += chunk.toString();
    cb();
  }
}

async function* toolCallingEngine(): AsyncGenerator<GenerationChunk> {
  yield { type: "text", index: 0, text: "Looking it up." };
  yield { type: "tool_call", index: 0, callIndex: 0, id: "call_1", name: "weather", arguments: "" };
  yield { type: "tool_call_arguments", index: 0, callIndex: 0, arguments: '{"city":' };
  yield { type: "tool_call", index: 0, callIndex: 1, id: "call_2", name: "time", arguments: "{}" };
  yield { type: "tool_call_arguments", index: 0, callIndex: 0, arguments: '"Oslo"}' };
  yield { type: "finish", index: 0, reason: "tool_calls" };
  yield { type: "usage", usage: { promptTokens: 5, completionTokens: 9 } };
}

describe("sendGeneration with tool calls", () => {
  const request = { id: "r2", log: { info() {}, error() {} } } as unknown as FastifyRequest;

  it("folds them into message.tool_calls (content null when the message has no text)", async () => {
    const reply = {} as FastifyReply;
    const formatter = chatFormatter({ model: "m", includeUsage: false });
    const whole = (await sendGeneration({ request, reply, chunks: toolCallingEngine(), formatter, stream: false, includeUsage: false })) as {
      choices: { message: unknown; finish_reason: string }[];
    };
    expect(whole.choices[0]).toMatchObject({
      finish_reason: "tool_calls",
      message: {
        role: "assistant",
        content: "Looking it up.",
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } },
          { id: "call_2", type: "function", function: { name: "time", arguments: "{}" } },
        ],
      },
    });
    async function* callsOnly(): AsyncGenerator<GenerationChunk> {
      yield { type: "tool_call", index: 0, callIndex: 0, id: "c", name: "f", arguments: "{}" };
      yield { type: "finish", index: 0, reason: "tool_calls" };
    }
    const bare = (await sendGeneration({ request, reply, chunks: callsOnly(), formatter, stream: false, includeUsage: false })) as {
      choices: { message: { content: unknown } }[];
    };
    expect(bare.choices[0]!.message.content).toBeNull();
  });

  it("streams each call as OpenAI does: id, type and name with empty arguments first, then argument fragments", async () => {
    const raw = new RecordingResponse();
    const reply = { raw, hijack() {} } as unknown as FastifyReply;
    await sendGeneration({
      request,
      reply,
      chunks: toolCallingEngine(),
      formatter: chatFormatter({ model: "m", includeUsage: false }),
      stream: true,
      includeUsage: false,
    });
    const events = raw.body
      .split("\n\n")
      .filter((e) => e.startsWith("data: ") && !e.includes("[DONE]"))
      .map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { tool_calls?: unknown[] }; finish_reason: string | null }[] });
    const calls = events.flatMap((e) => e.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([
      { index: 0, id: "call_1", type: "function", function: { name: "weather", arguments: "" } },
      { index: 0, function: { arguments: '{"city":' } },
      { index: 1, id: "call_2", type: "function", function: { name: "time", arguments: "" } },
      { index: 1, function: { arguments: "{}" } },
      { index: 0, function: { arguments: '"Oslo"}' } },
    ]);
    expect(events.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("refuses a tool call on a text completion instead of dropping it", async () => {
    const formatter = completionFormatter({ model: "m", includeUsage: false });
    await expect(sendGeneration({ request, reply: {} as FastifyReply, chunks: toolCallingEngine(), formatter, stream: false, includeUsage: false })).rejects.toThrow(
      /tool call for a text completion/,
    );
  });
});
