import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { openSocket, readUntilClose } from "./rawHttp.js";

let t: TestDaemon;
let port: number;
beforeAll(async () => {
  t = await startTestDaemon();
  port = Number(new URL(t.url).port);
});
afterAll(async () => {
  await t?.close();
});

const body = JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, stream: true });

/** Streams a chat completion over a raw socket; returns what arrived and how long the close took after [DONE]. */
async function streamRaw(head: string) {
  const socket = await openSocket(port);
  let doneAt = 0;
  socket.on("data", (d: Buffer | string) => {
    if (doneAt === 0 && String(d).includes("data: [DONE]")) doneAt = performance.now();
  });
  // Well under Node's keep-alive timeout (72 s): a stream that leaves the connection open fails here.
  const r = await readUntilClose(socket, 10_000, () =>
    socket.write(`${head}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
  );
  return { ...r, afterDoneMs: performance.now() - doneAt, sawDone: doneAt > 0 };
}

describe("a stream honours the request's connection semantics", () => {
  it("Connection: close → the socket closes right after [DONE]", async () => {
    const r = await streamRaw("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    expect(r.sawDone).toBe(true);
    expect(r.closed).toBe(true);
    expect(r.afterDoneMs).toBeLessThan(2_000);
    expect(r.response!.status).toBe(200);
    expect(r.response!.headers.connection).toBe("close");
  });

  it("HTTP/1.0 → the socket closes right after [DONE]", async () => {
    const r = await streamRaw("POST /v1/chat/completions HTTP/1.0\r\nHost: localhost\r\n");
    expect(r.sawDone).toBe(true);
    expect(r.closed).toBe(true);
    expect(r.afterDoneMs).toBeLessThan(2_000);
    expect(r.text).toContain("data: [DONE]");
  });

  it("HTTP/1.1 keep-alive → the connection stays open for the next request", async () => {
    const socket = await openSocket(port);
    const r = await readUntilClose(socket, 1_500, () =>
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      ),
    );
    expect(r.text).toContain("data: [DONE]");
    expect(r.closed).toBe(false); // still open when the reader gave up
    expect(r.response!.headers.connection).toBe("keep-alive");
  });
});
