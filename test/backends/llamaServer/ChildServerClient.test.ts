// ChildServerClient's retry and stall rules against small in-process HTTP servers on private Unix sockets (one per
// "start" of a child), with a fake supervisor: no engine, no process.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { ChildEndpoint } from "../../../src/backends/childServer/ChildEndpoint.js";
import { ChildServerClient, type SupervisedChild } from "../../../src/backends/childServer/ChildServerClient.js";
import { UpstreamError } from "../../../src/core/errors.js";
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

const event = (text: string, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`;
const USAGE = `data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n`;

/** Answers one streamed completion in full. */
function answer(res: ServerResponse, from: string): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.end(event(from) + event("!", "length") + USAGE + "data: [DONE]\n\n");
}

/** One start of a "child": an HTTP server on its own endpoint. `handle` gets each request and its number (from 1). */
interface FakeStart {
  endpoint: ChildEndpoint;
  server: Server;
  requests: number;
  /** The child dies: stops listening and drops every connection. */
  kill(): Promise<void>;
}

let dir: string;
const starts: FakeStart[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "child-client-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const s of starts.splice(0)) {
    await s.kill();
    await s.endpoint.close();
  }
});

async function start(handle: (req: IncomingMessage, res: ServerResponse, n: number, self: FakeStart) => void, listen = true): Promise<FakeStart> {
  const endpoint = await ChildEndpoint.create({ transport: "unix", base: dir });
  const self: FakeStart = {
    endpoint,
    server: createServer((req, res) => {
      self.requests++;
      const n = self.requests;
      req.resume();
      req.once("end", () => handle(req, res, n, self));
    }),
    requests: 0,
    kill: async () => {
      self.server.closeAllConnections();
      if (self.server.listening) await new Promise((resolve) => self.server.close(resolve));
    },
  };
  if (listen) await new Promise<void>((resolve) => self.server.listen(endpoint.socketPath!, resolve));
  starts.push(self);
  return self;
}

/** The supervisor as ChildServerClient sees it: hands out `current`; a confirmed death moves on to `next`. */
class FakeSupervisor implements SupervisedChild {
  ensureReadyCalls = 0;
  confirmed: ChildEndpoint[] = [];
  recycled: string[] = [];
  onRecycle: () => void = () => undefined;
  /** Whether confirmGone says the child is gone. */
  gone = true;

  constructor(
    private current: FakeStart,
    private readonly next: FakeStart | null = null,
  ) {}

  async ensureReady(): Promise<{ address: ChildEndpoint }> {
    this.ensureReadyCalls++;
    return { address: this.current.endpoint };
  }

  async confirmGone(address: ChildEndpoint): Promise<boolean> {
    this.confirmed.push(address);
    if (this.gone && this.next && address === this.current.endpoint) this.current = this.next;
    return this.gone;
  }

  recycle(reason: string): void {
    this.recycled.push(reason);
    this.onRecycle();
  }
}

function client(process: FakeSupervisor, stallTimeoutMs = 5_000): ChildServerClient {
  return new ChildServerClient({ name: "test-engine", modelId: "m", process, logger: pino({ level: "silent" }), stallTimeoutMs, connectTimeoutMs: 2_000 });
}

/** Reads the stream; returns what came before an error, and the error. */
async function collect(chunks: AsyncIterable<GenerationChunk>): Promise<{ chunks: GenerationChunk[]; error: unknown }> {
  const out: GenerationChunk[] = [];
  try {
    for await (const c of chunks) out.push(c);
    return { chunks: out, error: null };
  } catch (error) {
    return { chunks: out, error };
  }
}

const texts = (chunks: GenerationChunk[]) => chunks.flatMap((c) => (c.type === "text" ? [c.text] : []));

describe("ChildServerClient: retry when the child died under a request", () => {
  it("a kept-alive connection the dying child dropped: retried once, on the restarted child", async () => {
    // The first request leaves a kept-alive connection; the child dies as the second arrives on it.
    const a = await start((_req, res, n, self) => (n === 1 ? answer(res, "from a") : void self.kill()));
    const b = await start((_req, res) => answer(res, "from b"));
    const supervisor = new FakeSupervisor(a, b);
    const c = client(supervisor);
    expect(texts((await collect(c.complete(request, AbortSignal.timeout(5_000)))).chunks)).toEqual(["from a", "!"]);
    const second = await collect(c.complete(request, AbortSignal.timeout(5_000)));
    expect(second.error).toBeNull();
    expect(texts(second.chunks)).toEqual(["from b", "!"]);
    expect(a.requests).toBe(2);
    expect(b.requests).toBe(1);
    expect(supervisor.confirmed).toEqual([a.endpoint]); // asked once whether the child is gone
    expect(supervisor.ensureReadyCalls).toBe(3);
  });

  it("only once: a restarted child that is unreachable too fails the request", async () => {
    const a = await start(() => undefined, false); // never listens: its socket is refused at once
    const b = await start(() => undefined, false);
    const supervisor = new FakeSupervisor(a, b);
    const { error } = await collect(client(supervisor).complete(request, AbortSignal.timeout(5_000)));
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).code).toBe("upstream_unreachable");
    expect(supervisor.confirmed).toEqual([a.endpoint]);
    expect(supervisor.ensureReadyCalls).toBe(2);
  });

  it("no retry when the supervisor sees the child still running", async () => {
    const a = await start((req) => req.socket.destroy()); // alive, but drops the request
    const supervisor = new FakeSupervisor(a);
    supervisor.gone = false;
    const { error } = await collect(client(supervisor).complete(request, AbortSignal.timeout(5_000)));
    expect((error as UpstreamError).code).toBe("upstream_unreachable");
    expect(supervisor.confirmed).toEqual([a.endpoint]);
    expect(supervisor.ensureReadyCalls).toBe(1);
    expect(a.requests).toBe(1);
  });

  it("no retry once part of the answer was streamed: the client already has it", async () => {
    const a = await start((req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(event("partial"), () => setTimeout(() => req.socket.destroy(), 50));
    });
    const b = await start((_req, res) => answer(res, "from b"));
    const supervisor = new FakeSupervisor(a, b);
    const { chunks, error } = await collect(client(supervisor).complete(request, AbortSignal.timeout(5_000)));
    expect(texts(chunks)).toEqual(["partial"]);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(supervisor.confirmed).toEqual([]);
    expect(supervisor.ensureReadyCalls).toBe(1);
    expect(b.requests).toBe(0);
  });

  it("embeddings are retried the same way", async () => {
    const a = await start(() => undefined, false);
    const b = await start((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: [{ index: 0, embedding: [1, 2] }], usage: { prompt_tokens: 1 } }));
    });
    const supervisor = new FakeSupervisor(a, b);
    const result = await client(supervisor).embed({ model: "m", input: ["x"] }, AbortSignal.timeout(5_000));
    expect(result).toEqual({ vectors: [[1, 2]], promptTokens: 1 });
    expect(supervisor.confirmed).toEqual([a.endpoint]);
  });
});

describe("ChildServerClient: stall watchdog", () => {
  it("a generation silent for stallTimeoutMs gets the child replaced and a 504 engine_stalled; no retry", async () => {
    const a = await start((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(event("first")); // then nothing: wedged
    });
    const supervisor = new FakeSupervisor(a);
    supervisor.onRecycle = () => void a.kill(); // the supervisor kills the wedged child, which ends the stream
    const started = Date.now();
    const { chunks, error } = await collect(client(supervisor, 300).complete(request, AbortSignal.timeout(5_000)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(texts(chunks)).toEqual(["first"]);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ status: 504, code: "engine_stalled" });
    expect((error as Error).message).toMatch(/The test-engine engine for 'm' stopped producing output for 0 s; its process was replaced/);
    expect(supervisor.recycled).toEqual(["a test-engine generation for m produced nothing for 0 s"]);
    expect(supervisor.ensureReadyCalls).toBe(1);
  });

  it("silence before the first byte counts too", async () => {
    const a = await start(() => undefined); // reads the request, never answers
    const supervisor = new FakeSupervisor(a);
    supervisor.onRecycle = () => void a.kill();
    const { error } = await collect(client(supervisor, 300).complete(request, AbortSignal.timeout(5_000)));
    expect(error).toMatchObject({ status: 504, code: "engine_stalled" });
    expect(supervisor.recycled).toHaveLength(1);
    expect(supervisor.confirmed).toEqual([]); // a stall is not retried, even though the connection was cut
  });

  it("a slow but steady stream is never cut", async () => {
    const a = await start((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      let i = 0;
      const timer = setInterval(() => {
        if (++i < 6) res.write(event(String(i)));
        else {
          clearInterval(timer);
          res.end(event("", "length") + USAGE + "data: [DONE]\n\n");
        }
      }, 150); // 900 ms in all: longer than the stall timeout, never silent for that long
    });
    const supervisor = new FakeSupervisor(a);
    const { chunks, error } = await collect(client(supervisor, 700).complete(request, AbortSignal.timeout(5_000)));
    expect(error).toBeNull();
    expect(texts(chunks)).toEqual(["1", "2", "3", "4", "5"]);
    expect(supervisor.recycled).toEqual([]);
  });

  it("a client that hangs up is not a stall: its abort, no replacement", async () => {
    const a = await start((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(event("first"));
    });
    const supervisor = new FakeSupervisor(a);
    const control = new AbortController();
    setTimeout(() => control.abort(new Error("client gone")), 100);
    const { error } = await collect(client(supervisor, 1_000).complete(request, control.signal));
    expect((error as Error).message).toBe("client gone");
    await new Promise((r) => setTimeout(r, 1_100)); // past the stall timeout: the watchdog was disarmed
    expect(supervisor.recycled).toEqual([]);
  });
});
