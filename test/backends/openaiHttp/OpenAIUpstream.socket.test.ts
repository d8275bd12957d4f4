import { mkdtemp, rm } from "node:fs/promises";
import { Agent, createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
let dir: string | null = null;

/** An upstream on a Unix socket that answers only `Bearer secret`, and records what it saw. */
async function socketUpstream(options: { dropReused?: boolean } = {}) {
  dir = await mkdtemp(join(tmpdir(), "upstream-socket-"));
  const socketPath = join(dir, "s.sock");
  const seen: IncomingHttpHeaders[] = [];
  let connections = 0;
  const served = new WeakMap<object, number>();
  server = createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    if (options.dropReused && n > 1) return req.socket.destroy();
    seen.push(req.headers);
    req.resume();
    req.on("end", () => {
      if (req.headers.authorization !== "Bearer secret") {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "Invalid API Key", type: "authentication_error" } }));
      } else if (req.url === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ id: "m" }] }));
      } else if (req.url === "/v1/embeddings") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ index: 0, embedding: [1, 0] }], usage: { prompt_tokens: 1 } }));
      } else {
        res.writeHead(200, { "content-type": "text/event-stream" });
        for (const event of STREAM) res.write(event);
        res.end();
      }
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server!.listen(socketPath, resolve));
  const agent = new Agent({ keepAlive: true });
  const client = (apiKey = "secret") =>
    new OpenAIUpstream({ name: "child", baseUrl: "http://localhost/v1", apiKey, socketPath, agent, connectTimeoutMs: 2_000, firstByteTimeoutMs: 5_000 });
  return { client, agent, seen, connections: () => connections };
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
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

describe("OpenAIUpstream on a Unix socket with its own agent (a supervised child)", () => {
  it("streams, embeds and lists models with the key, all on one kept-alive connection of the caller's agent", async () => {
    const { client, agent, seen, connections } = await socketUpstream();
    for (let i = 0; i < 3; i++) {
      const chunks = await collect(client().complete(request, "m", AbortSignal.timeout(5_000)));
      expect(chunks.at(-1)).toEqual({ type: "usage", usage: { promptTokens: 1, completionTokens: 2 } });
    }
    expect(await client().listModels(AbortSignal.timeout(5_000))).toEqual(["m"]);
    expect(await client().embed({ model: "m", input: ["x"] }, "m", AbortSignal.timeout(5_000))).toEqual({ vectors: [[1, 0]], promptTokens: 1 });
    expect(connections()).toBe(1);
    expect(seen.every((h) => h.authorization === "Bearer secret" && h.host === "localhost")).toBe(true);
    const idle = Object.values(agent.freeSockets).flat();
    expect(idle).toHaveLength(1);
    agent.destroy(); // what the child's endpoint does when the child stops: no connection outlives it
    expect(idle[0]!.destroyed).toBe(true);
  });

  it("a kept-alive connection dropped as it is reused is retried once on a new one", async () => {
    const { client, connections } = await socketUpstream({ dropReused: true });
    for (let i = 0; i < 3; i++) {
      const chunks = await collect(client().complete(request, "m", AbortSignal.timeout(5_000)));
      expect(chunks.some((c) => c.type === "finish")).toBe(true);
    }
    expect(connections()).toBe(3);
  });

  it("a wrong key is an upstream error (502), a missing socket is unreachable", async () => {
    const { client } = await socketUpstream();
    await expect(collect(client("wrong").complete(request, "m", AbortSignal.timeout(5_000)))).rejects.toMatchObject({ status: 502, code: "upstream_error" });
    const gone = new OpenAIUpstream({
      name: "child",
      baseUrl: "http://localhost/v1",
      socketPath: join(dir!, "nothing.sock"),
      agent: new Agent(),
      connectTimeoutMs: 2_000,
      firstByteTimeoutMs: 5_000,
    });
    await expect(collect(gone.complete(request, "m", AbortSignal.timeout(5_000)))).rejects.toMatchObject({ code: "upstream_unreachable" });
    await expect(gone.listModels(AbortSignal.timeout(5_000))).rejects.toMatchObject({ code: "upstream_unreachable" });
  });
});
