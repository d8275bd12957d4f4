import type { Socket } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { loadConfig } from "../../src/config/loadConfig.js";
import type { GenerationChunk, ModelDescriptor } from "../../src/core/types.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { openSocket, parseRawResponse, readUntilClose } from "./rawHttp.js";

/** An engine whose answer ends only when the test says so: a request in flight for as long as needed. */
class HeldBackend implements Backend {
  readonly parallel = 4;
  static release: () => void = () => undefined;
  constructor(readonly descriptor: ModelDescriptor) {}
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async *complete(): AsyncIterable<GenerationChunk> {
    yield { type: "text", index: 0, text: "first" };
    await new Promise<void>((resolve) => (HeldBackend.release = resolve));
    yield { type: "text", index: 0, text: " last" };
    yield { type: "finish", index: 0, reason: "stop" };
    yield { type: "usage", usage: { promptTokens: 1, completionTokens: 2 } };
  }
}

let daemon: Daemon;
let url: string;
let port: number;
beforeAll(async () => {
  const fx = await ensureFixtures();
  const config = loadConfig({
    base: { port: 0, models: [{ id: "held", path: fx.chatModelPath }], ggufEngine: "node-llama-cpp", logLevel: "silent", shutdownGraceSeconds: 30 },
  });
  daemon = await createDaemon({ config, logger: pino({ level: "silent" }), backends: { "node-llama-cpp": (d) => new HeldBackend(d) } });
  url = (await daemon.listen()).url;
  port = Number(new URL(url).port);
});
afterAll(async () => {
  HeldBackend.release();
  await daemon?.close();
});

/** Sends one request on an open socket and resolves with the raw response once it is complete. */
function exchange(socket: Socket, head: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString();
      const r = parseRawResponse(text);
      if (r && r.headers["content-length"] !== undefined && r.body.length >= Number(r.headers["content-length"])) {
        socket.off("data", onData);
        resolve(text);
      }
    };
    socket.on("data", onData);
    socket.write(head);
  });
}

describe("SIGTERM drain", () => {
  it("answers requests on kept-alive connections 503 shutting_down with Connection: close; closes idle ones afterwards", async () => {
    // Three kept-alive connections, idle after one answered request each.
    const a = await openSocket(port);
    const b = await openSocket(port);
    const c = await openSocket(port);
    let cClosed = false;
    c.once("close", () => (cClosed = true));
    for (const s of [a, b, c]) expect(parseRawResponse(await exchange(s, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"))!.status).toBe(200);

    // A stream in flight, held open by the engine.
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "held", prompt: "x", stream: true }),
    });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("first");

    const closed = daemon.close();
    let closeDone = false;
    void closed.then(() => (closeDone = true));

    // A request on an idle kept-alive connection: the envelope, and the connection is closed after it.
    const r = await readUntilClose(a, 5_000, () => a.write("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    expect(r.response!.status).toBe(503);
    expect(r.response!.headers.connection).toBe("close");
    expect(JSON.parse(r.response!.body)).toEqual({
      error: { message: expect.any(String), type: "service_unavailable_error", param: null, code: "shutting_down" },
    });
    expect(r.closed).toBe(true);
    // Readiness still says why.
    const ready = await readUntilClose(b, 5_000, () => b.write("GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    expect(ready.response!.status).toBe(503);
    expect(JSON.parse(ready.response!.body).error.code).toBe("draining");

    // No new connections.
    await expect(openSocket(port)).rejects.toThrow();

    // An idle connection stays open while the stream runs, and is closed once the drain is over.
    expect(cClosed).toBe(false);
    expect(closeDone).toBe(false);

    HeldBackend.release();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain(" last");
    expect(rest).toContain("data: [DONE]");
    await closed;
    c.resume(); // read to the end, so the server's close is seen
    await new Promise((resolve) => (cClosed ? resolve(null) : c.once("close", resolve)));
  });
});
