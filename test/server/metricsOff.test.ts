// `metrics: false` (--metrics off, TABAGENT_METRICS=off): no /metrics route, nothing recorded, everything else the same.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/loadConfig.js";
import { DaemonMetrics } from "../../src/server/metrics/DaemonMetrics.js";
import { NO_METRICS } from "../../src/api/GenerationMetrics.js";
import type { GenerationChunk } from "../../src/core/types.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

describe("the metrics setting", () => {
  it("defaults to on; --metrics and TABAGENT_METRICS take on/off/true/false/1/0", () => {
    expect(loadConfig().metrics).toBe(true);
    expect(loadConfig({ env: { TABAGENT_METRICS: "off" } }).metrics).toBe(false);
    expect(loadConfig({ env: { TABAGENT_METRICS: "0" } }).metrics).toBe(false);
    expect(loadConfig({ env: { TABAGENT_METRICS: "off" }, flags: { metrics: "on" } }).metrics).toBe(true);
    expect(() => loadConfig({ flags: { metrics: "maybe" } })).toThrow(/metrics \(from --metrics\)/);
  });

  it("off: one shared observer that records nothing", () => {
    const a = NO_METRICS.startGeneration("m");
    expect(NO_METRICS.startGeneration("other")).toBe(a);
    const chunk: GenerationChunk = { type: "text", index: 0, text: "a" };
    expect(() => a.chunk(chunk)).not.toThrow();
    expect(new DaemonMetrics({ processMetrics: false }).startGeneration("m")).not.toBe(a);
  });
});

describe("a daemon with metrics off", () => {
  let t: TestDaemon;
  beforeAll(async () => {
    t = await startTestDaemon({ metrics: false, apiKeys: ["sk-test-0123456789abcdef"] });
  });
  afterAll(async () => {
    await t?.close();
  });
  const auth = { authorization: "Bearer sk-test-0123456789abcdef" };

  it("answers /metrics with 404 unknown_route (after the key check, like any unknown route)", async () => {
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    const res = await fetch(`${t.url}/metrics`, { headers: auth });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unknown_route");
  });

  it("serves chat (plain and streamed), completions and embeddings as usual", async () => {
    const chat = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4 }, auth);
    expect(chat.status).toBe(200);
    expect(chat.json).toMatchObject({ usage: { completion_tokens: 4 } });
    const stream = await postJson(
      `${t.url}/v1/chat/completions`,
      { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, stream: true },
      auth,
    );
    expect(stream.status).toBe(200);
    expect(stream.text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    const completion = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "Hello", max_tokens: 4 }, auth);
    expect(completion.status).toBe(200);
    const embedding = await postJson(`${t.url}/v1/embeddings`, { model: "tiny-embed", input: "hello" }, auth);
    expect(embedding.status).toBe(200);
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});
