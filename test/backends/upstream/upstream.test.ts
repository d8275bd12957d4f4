import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { readSse } from "../../helpers/readSse.js";

let upstream: TestDaemon;
let front: TestDaemon;
let deadPort: number;

beforeAll(async () => {
  upstream = await startTestDaemon({ contextSize: 2048 });
  // a port with nothing behind it
  const probe = await startTestDaemon({ models: [] });
  deadPort = Number(new URL(probe.url).port);
  await probe.close();
  front = await startTestDaemon({
    models: [],
    upstreams: [
      { name: "local", baseUrl: `${upstream.url}/v1`, prefix: "up/" },
      { name: "plain", baseUrl: `${upstream.url}/v1` },
      // A connect timeout far shorter than the streams below: it must not cut them (it covers the headers only).
      { name: "quick", baseUrl: `${upstream.url}/v1`, prefix: "quick/", connectTimeoutMs: 150 },
      { name: "gone", baseUrl: `http://127.0.0.1:${deadPort}/v1`, prefix: "gone/", connectTimeoutMs: 1000 },
    ],
  });
});
afterAll(async () => {
  await front?.close();
  await upstream?.close();
});

async function upstreamRunning() {
  const h = (await (await fetch(`${upstream.url}/health`)).json()) as { models: { id: string; running: number }[] };
  return h.models.find((m) => m.id === "tiny-chat")!.running;
}

describe("upstream OpenAI servers", () => {
  it("merges upstream models into /v1/models; a down upstream is reported, not fatal", async () => {
    const ids = (await front.client.models.list()).data.map((m) => m.id).sort();
    expect(ids).toEqual(["quick/tiny-chat", "quick/tiny-embed", "tiny-chat", "tiny-embed", "up/tiny-chat", "up/tiny-embed"]);
    const health = (await (await fetch(`${front.url}/health`)).json()) as { upstreams: { name: string; state: string; error: string | null }[] };
    expect(health.upstreams.find((u) => u.name === "plain")!.state).toBe("up");
    expect(health.upstreams.find((u) => u.name === "gone")).toMatchObject({ state: "down", error: expect.stringMatching(/unreachable/) });
  });

  it("proxies chat, streamed and not, with the model name rewritten and usage preserved", async () => {
    const direct = await upstream.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 20, temperature: 0 });
    const viaPrefix = await front.client.chat.completions.create({
      model: "up/tiny-chat",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 20,
      temperature: 0,
    });
    expect(viaPrefix.model).toBe("up/tiny-chat");
    expect(viaPrefix.choices[0]!.message.content).toBe(direct.choices[0]!.message.content);
    expect(viaPrefix.usage).toEqual(direct.usage);
    const stream = await front.client.chat.completions.create({
      model: "tiny-chat",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage;
    let pieces = 0;
    for await (const c of stream) {
      expect(c.model).toBe("tiny-chat");
      if (c.choices[0]?.delta.content) pieces++;
      text += c.choices[0]?.delta.content ?? "";
      usage = c.usage ?? usage;
    }
    expect(text).toBe(direct.choices[0]!.message.content);
    expect(pieces).toBeGreaterThan(5);
    expect(usage).toEqual(direct.usage);
  });

  it("a stream may last longer than the connect timeout", async () => {
    const started = Date.now();
    const r = await front.client.chat.completions.create({ model: "quick/tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1500, temperature: 0 });
    expect(Date.now() - started).toBeGreaterThan(150);
    expect(r.usage!.completion_tokens).toBe(1500);
  });

  it("proxies completions and embeddings", async () => {
    const c = await front.client.completions.create({ model: "up/tiny-chat", prompt: "The cat", max_tokens: 5, temperature: 0 });
    expect(c.choices[0]!.finish_reason).toBe("length");
    expect(c.usage!.completion_tokens).toBe(5);
    const e = await front.client.embeddings.create({ model: "up/tiny-embed", input: ["a", "b"] });
    const d = await upstream.client.embeddings.create({ model: "tiny-embed", input: ["a", "b"] });
    expect(e.data.map((x) => x.embedding)).toEqual(d.data.map((x) => x.embedding));
  });

  it("upstream errors keep the upstream's message in our envelope", async () => {
    const r = await postJson(`${front.url}/v1/chat/completions`, { model: "up/tiny-embed", messages: [{ role: "user", content: "x" }] });
    expect(r.status).toBe(400);
    expect(r.json.error!.message).toMatch(/Upstream 'local' answered 400: .*embeddings model/);
    const missing = await postJson(`${front.url}/v1/chat/completions`, { model: "up/nope", messages: [{ role: "user", content: "x" }] });
    expect(missing.status).toBe(404);
  });

  it("an upstream that is down → 502 envelope; the daemon keeps serving", async () => {
    const r = await postJson(`${front.url}/v1/chat/completions`, { model: "gone/anything", messages: [{ role: "user", content: "x" }] });
    expect(r.status).toBe(502);
    expect(r.json.error).toMatchObject({ type: "server_error", code: "upstream_unreachable" });
    expect((await fetch(`${front.url}/health`)).status).toBe(200);
  });

  it("a client that goes away aborts the upstream request", async () => {
    const controller = new AbortController();
    const s = await front.client.chat.completions.create(
      { model: "up/tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let n = 0;
    try {
      for await (const _ of s) if (++n === 3) controller.abort();
    } catch {
      /* aborted */
    }
    const end = Date.now() + 3000;
    while ((await upstreamRunning()) !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(await upstreamRunning()).toBe(0);
  });

  it("an upstream that dies mid-stream gives one SSE error event, then the stream closes", async () => {
    const res = await fetch(`${front.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "up/tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0, stream: true }),
    });
    // the upstream drops every connection once content flows
    const text = await readSse(res, () => upstream.daemon.app.server.closeAllConnections());
    const events = text.split("\n\n").filter(Boolean);
    const last = JSON.parse(events.at(-1)!.slice(6));
    expect(last.error).toMatchObject({ type: "server_error", code: "upstream_error" });
    expect(last.error.message).toMatch(/broke off the stream|before it was complete/);
    expect(text).not.toContain("[DONE]");
    // and the front keeps serving (the upstream too, for new connections)
    const ok = await front.client.chat.completions.create({ model: "up/tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0 });
    expect(ok.choices[0]!.finish_reason).toBe("length");
  });
});
