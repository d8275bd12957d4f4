// A client that stops reading a stream must not make the daemon buffer the answer: through the real HTTP stack, an
// engine that would produce text forever is paused by socket backpressure, the daemon's memory stays flat while the
// client does not read, the stream goes on when it reads again, and leaving frees the slot.
import { createConnection, type Socket } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { loadConfig } from "../../src/config/loadConfig.js";
import type { GenerationChunk, ModelDescriptor } from "../../src/core/types.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";

const PIECE = "x".repeat(4096);
const engine = { produced: 0, stopped: false };

/** Produces 4 KiB text pieces until its request is aborted: an answer with no end, as fast as the daemon takes them. */
class FirehoseBackend implements Backend {
  readonly parallel = 1;
  constructor(readonly descriptor: ModelDescriptor) {}
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async *chat(_request: unknown, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    try {
      while (!signal.aborted) {
        engine.produced++;
        yield { type: "text", index: 0, text: PIECE };
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      engine.stopped = true;
    }
  }
}

let daemon: Daemon;
let port: number;
const serverSockets: Socket[] = [];
beforeAll(async () => {
  const fx = await ensureFixtures();
  const config = loadConfig({ base: { port: 0, models: [{ id: "firehose", path: fx.chatModelPath }], ggufEngine: "node-llama-cpp", logLevel: "silent" } });
  daemon = await createDaemon({ config, logger: pino({ level: "silent" }), backends: { "node-llama-cpp": (d) => new FirehoseBackend(d) } });
  port = Number(new URL((await daemon.listen()).url).port);
  daemon.app.server.on("connection", (s: Socket) => serverSockets.push(s));
});
afterAll(async () => {
  await daemon?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `read()` gives the same value twice `gapMs` apart; returns it. */
async function settle(read: () => number, gapMs: number, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last = read();
  for (;;) {
    await sleep(gapMs);
    const now = read();
    if (now === last) return now;
    if (Date.now() > end) throw new Error(`still changing after ${timeoutMs} ms (${last} -> ${now})`);
    last = now;
  }
}

describe("a client that does not read a stream", () => {
  it("pauses the engine; the daemon's memory stays flat; reading resumes it; leaving frees the slot", async () => {
    const body = JSON.stringify({ model: "firehose", messages: [{ role: "user", content: "Hello" }], stream: true });
    const client = createConnection({ host: "127.0.0.1", port });
    await new Promise<void>((resolve) => client.once("connect", resolve));
    // No 'data' listener: the socket stays paused, so the client's kernel buffer fills and TCP stops the sender.
    client.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);

    const stalledAt = await settle(() => engine.produced, 300);
    expect(stalledAt).toBeGreaterThan(0);
    expect(daemon.router.modelStatus("firehose")).toMatchObject({ running: 1 });
    const server = serverSockets.at(-1)!;
    const heapAtStall = process.memoryUsage().heapUsed;

    // Another second of not reading: nothing more is produced, nothing piles up in the daemon.
    const buffered: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      buffered.push(server.writableLength);
    }
    expect(engine.produced).toBe(stalledAt);
    // Kernel buffers hold what was sent; the daemon holds at most the socket's high-water mark and one piece.
    expect(Math.max(...buffered)).toBeLessThan(64 * 1024);
    // The engine could have made hundreds of MB in that second; heap growth stays within noise.
    expect(process.memoryUsage().heapUsed - heapAtStall).toBeLessThan(32 * 1024 * 1024);
    // What was produced before the stall is bounded by buffers (kernel + the read-ahead window), not the answer.
    expect(stalledAt * PIECE.length).toBeLessThan(64 * 1024 * 1024);

    // The client reads again: the stream goes on.
    let received = 0;
    client.on("data", (d: Buffer) => (received += d.length));
    const end = Date.now() + 10_000;
    while (engine.produced < stalledAt * 2 + 100 && Date.now() < end) await sleep(20);
    expect(engine.produced).toBeGreaterThan(stalledAt * 2);
    expect(received).toBeGreaterThan(stalledAt * PIECE.length);

    // The client leaves: the generation stops and the slot is free.
    client.destroy();
    const deadline = Date.now() + 5000;
    while ((!engine.stopped || daemon.router.modelStatus("firehose")!.running !== 0) && Date.now() < deadline) await sleep(10);
    expect(engine.stopped).toBe(true);
    expect(daemon.router.modelStatus("firehose")).toMatchObject({ running: 0, queued: 0 });
  });
});
