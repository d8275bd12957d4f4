import { createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ maxTokensCap: 100, maxMessages: 3, maxInflight: 2, parallel: 1, queueSize: 10, requestTimeoutSeconds: 1, contextSize: 2048 });
});
afterAll(async () => {
  await t?.close();
});

const hello = { role: "user", content: "Hello" };

describe("server limits", () => {
  it("caps max_tokens and max_completion_tokens, naming the parameter", async () => {
    const a = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello], max_tokens: 101 });
    expect(a.status).toBe(400);
    expect(a.json.error).toMatchObject({ param: "max_tokens", code: "limit_exceeded" });
    const b = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello], max_completion_tokens: 500 });
    expect(b.json.error).toMatchObject({ param: "max_completion_tokens" });
    const c = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "x", max_tokens: 1000 });
    expect(c.json.error).toMatchObject({ param: "max_tokens" });
    const ok = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello], max_tokens: 100 });
    expect(ok.status).toBe(200);
  });

  it("caps the number of messages", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello, hello, hello, hello], max_tokens: 1 });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: "messages", code: "limit_exceeded" });
  });

  it("caps requests in flight across the daemon: 429 server_busy with Retry-After", async () => {
    const controllers = [new AbortController(), new AbortController()];
    const body = JSON.stringify({ model: "tiny-chat", messages: [hello], max_tokens: 100, stream: true, temperature: 0 });
    // Two slow-to-finish streams: one running, one queued behind it (parallel 1).
    const open = controllers.map((c) =>
      fetch(`${t.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body, signal: c.signal }).then(
        async (res) => {
          const reader = res.body!.getReader();
          await reader.read(); // hold the stream open without draining it
          return reader;
        },
        () => null,
      ),
    );
    const end = Date.now() + 5000;
    let r;
    for (;;) {
      r = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello], max_tokens: 1 });
      if (r.status === 429 || Date.now() > end) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(r.status).toBe(429);
    expect(r.json.error).toMatchObject({ code: "server_busy", type: "rate_limit_error" });
    expect(r.headers.get("retry-after")).toBe("1");
    for (const c of controllers) c.abort();
    await Promise.all(open);
  });

  it("a client that sends its request too slowly is cut off, and the daemon keeps serving", async () => {
    const closed = await new Promise<string>((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port: Number(new URL(t.url).port) }, () => {
        socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{");
      });
      let data = "";
      socket.on("data", (d) => (data += d.toString()));
      socket.on("close", () => resolve(data));
    });
    expect(closed).toMatch(/^HTTP\/1\.1 408/);
    const ok = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [hello], max_tokens: 1 });
    expect(ok.status).toBe(200);
  });
});
