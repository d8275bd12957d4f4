import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OpenAIUpstream } from "../../../src/backends/openaiHttp/OpenAIUpstream.js";
import type { CompletionRequest, GenerationChunk } from "../../../src/core/types.js";

const request: CompletionRequest = {
  model: "m",
  prompt: "Hi",
  echo: false,
  n: 1,
  logprobs: null,
  returnTokenIds: false,
  responseFormat: { type: "text" },
  sampling: { maxTokens: 2, temperature: 0, topP: undefined, seed: undefined, presencePenalty: 0, frequencyPenalty: 0, stop: [] },
};

const STREAM = [
  `data: {"choices":[{"index":0,"text":"he","finish_reason":null}]}\n\n`,
  `data: {"choices":[{"index":0,"text":"llo","finish_reason":"length"}]}\n\n`,
  `data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n`,
  "data: [DONE]\n\n",
];

let server: Server | null = null;

/** A streaming upstream that counts the TCP connections it accepted. */
async function upstream(options: { dropReused?: boolean; afterDone?: string } = {}) {
  let connections = 0;
  const served = new WeakMap<object, number>();
  server = createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    // The keep-alive race: the server closes a connection just as the client sends on it again.
    if (options.dropReused && n > 1) return req.socket.destroy();
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const event of STREAM) res.write(event);
      if (options.afterDone)
        res.write(options.afterDone); // a server that keeps the stream open after [DONE]
      else res.end();
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const client = new OpenAIUpstream({ name: "test", baseUrl: `http://127.0.0.1:${port}/v1`, connectTimeoutMs: 2_000, firstByteTimeoutMs: 5_000 });
  return { client, connections: () => connections };
}

async function collect(chunks: AsyncIterable<GenerationChunk>): Promise<GenerationChunk[]> {
  const out: GenerationChunk[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = null;
});

describe("OpenAIUpstream connections", () => {
  it("reads each stream to its end, so one kept-alive connection serves request after request", async () => {
    const { client, connections } = await upstream();
    for (let i = 0; i < 5; i++) {
      const chunks = await collect(client.complete(request, "m", AbortSignal.timeout(5_000)));
      expect(
        chunks
          .filter((c) => c.type === "text")
          .map((c) => (c as { text: string }).text)
          .join(""),
      ).toBe("hello");
      expect(chunks.at(-1)).toEqual({ type: "usage", usage: { promptTokens: 1, completionTokens: 2 } });
    }
    expect(connections()).toBe(1);
  });

  it("a kept-alive connection the server drops as it is reused is retried once on a new one", async () => {
    const { client, connections } = await upstream({ dropReused: true });
    for (let i = 0; i < 3; i++) {
      const chunks = await collect(client.complete(request, "m", AbortSignal.timeout(5_000)));
      expect(chunks.some((c) => c.type === "finish")).toBe(true);
    }
    expect(connections()).toBe(3); // each request after the first: dropped on the old connection, served on a new one
  });

  it("a stream left open after [DONE] ends the request within a second, as complete", async () => {
    const { client } = await upstream({ afterDone: ": still here\n\n" });
    const started = Date.now();
    const chunks = await collect(client.complete(request, "m", AbortSignal.timeout(5_000)));
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(chunks.at(-1)).toMatchObject({ type: "usage" });
  });
});
