import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { parsePrometheusText } from "./metrics/parsePrometheusText.js";

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon();
});
afterAll(async () => {
  await t?.close();
});

describe("metrics, readiness and API docs on the real daemon", () => {
  it("/metrics exposes the series after traffic and parses as Prometheus text", async () => {
    const s = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 8, stream: true });
    for await (const _ of s);
    await t.client.embeddings.create({ model: "tiny-embed", input: "hello" });
    await fetch(`${t.url}/v1/models/nope`);
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    const families = parsePrometheusText(text);
    const names = new Set(families.keys());
    for (const name of [
      "tabagent_requests_total",
      "tabagent_tokens_total",
      "tabagent_time_to_first_token_seconds",
      "tabagent_inter_token_latency_seconds",
      "tabagent_model_loaded",
      "tabagent_model_load_duration_seconds",
    ]) {
      expect(names.has(name), name).toBe(true);
    }
    expect(text).toMatch(/tabagent_requests_total\{[^}]*route="\/v1\/chat\/completions"[^}]*model="tiny-chat"[^}]*status="200"[^}]*\} 1/);
    expect(text).toMatch(/tabagent_tokens_total\{[^}]*model="tiny-chat"[^}]*kind="completion"[^}]*\} 8/);
    expect(text).toMatch(/tabagent_model_loaded\{[^}]*model="tiny-chat"[^}]*\} 1/);
  });

  it("/ready is 200 while serving", async () => {
    const res = await fetch(`${t.url}/ready`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready" });
  });

  it("/openapi.json and /docs describe the API", async () => {
    const doc = (await (await fetch(`${t.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"]));
    const page = await (await fetch(`${t.url}/docs`)).text();
    expect(page).toMatch(/\/v1\/chat\/completions/);
  });
});
