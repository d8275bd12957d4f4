import { PassThrough } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/loadConfig.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { openSocket } from "./rawHttp.js";

interface LogLine {
  reqId?: string;
  msg: string;
  level: number;
  [key: string]: unknown;
}

let daemon: Daemon;
let port: number;
const lines: LogLine[] = [];

beforeAll(async () => {
  const fixtures = await ensureFixtures();
  const config = loadConfig({
    base: {
      host: "127.0.0.1",
      port: 0,
      threads: 1,
      gpu: "off",
      ggufEngine: "node-llama-cpp",
      contextSize: 2048,
      logLevel: "info",
      models: [{ id: "tiny-chat", path: fixtures.chatModelPath }],
    },
  });
  // The daemon's own logger, written to a stream this test reads back: what an operator's log would hold.
  const destination = new PassThrough();
  let buf = "";
  destination.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as LogLine);
      buf = buf.slice(nl + 1);
    }
  });
  daemon = await createDaemon({ config, logger: pino({ level: "info" }, destination) });
  port = Number(new URL((await daemon.listen()).url).port);
  // Loaded before the tests: a cancellation during the load is another case (checked below all the same).
  await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 }),
  });
});
afterAll(async () => {
  await daemon?.close();
});

/** Sends a request on a raw socket, waits for `until`, then closes the socket before the answer is complete. */
async function sendAndHangUp(requestId: string, stream: boolean, until: "first bytes" | "generating"): Promise<string> {
  const socket = await openSocket(port);
  const body = JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0, stream });
  let received = "";
  socket.on("data", (d: Buffer) => (received += d.toString()));
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n\r\n${body}`,
  );
  if (until === "first bytes") await new Promise((resolve) => socket.once("data", resolve));
  else await waitFor(() => running() === 1);
  socket.destroy();
  return received;
}

function running(): number | undefined {
  return daemon.router.status().find((s) => s.descriptor.id === "tiny-chat")?.running;
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The request's lines once its handling has settled (the generation stopped, the slot released). */
async function linesOf(requestId: string): Promise<LogLine[]> {
  await waitFor(() => lines.some((l) => l.reqId === requestId) && running() === 0);
  await new Promise((resolve) => setTimeout(resolve, 200)); // a late line, if any, would be here by now
  return lines.filter((l) => l.reqId === requestId);
}

describe("a client that disconnects mid-request", () => {
  it.each([
    ["streamed, after the first event", true, "first bytes"],
    ["not streamed, while generating", false, "generating"],
  ] as const)("%s: exactly one line, with the request id", async (_name, stream, until) => {
    const id = `cancel-${stream ? "stream" : "whole"}`;
    const received = await sendAndHangUp(id, stream, until);
    if (!stream) expect(received).toBe(""); // closed before any answer
    const mine = await linesOf(id);
    expect(
      mine.map((l) => l.msg),
      JSON.stringify(mine),
    ).toEqual(["request cancelled: the connection closed before the response was complete"]);
    expect(mine[0]).toMatchObject({ reqId: id, method: "POST", url: "/v1/chat/completions", responseStarted: stream });
    // The slot is free again: the generation stopped with its client.
    expect(running()).toBe(0);
  });

  it("a completed request still logs one 'request completed' line and no cancellation", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "completed-1" },
      body: JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    await res.text();
    expect((await linesOf("completed-1")).map((l) => l.msg)).toEqual(["request completed"]);
  });
});
