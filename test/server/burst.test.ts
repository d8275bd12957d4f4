// A bounded burst on loopback against the real daemon and the generated tiny GGUF model: 40 requests at once, far
// more than 2 slots and 4 queue places take. Every answer is a 200 or a refusal with Retry-After in the OpenAI
// envelope (503 model_loading while the model loads, 429 queue_full after), the metrics count the same, and the
// daemon serves normally afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { parsePrometheusText } from "./metrics/parsePrometheusText.js";

const BURST = 40;
const PARALLEL = 2;
const QUEUE = 4;

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ parallel: PARALLEL, queueSize: QUEUE, maxInflight: 64, contextSize: 512 });
});
afterAll(async () => {
  await t?.close();
});

const body = { model: "tiny-chat", messages: [{ role: "user" as const, content: "Hello" }], max_tokens: 32, temperature: 0 };
type Reply = Awaited<ReturnType<typeof postJson>>;

/** Fires BURST requests at once and checks each answer's shape; returns the count per status. */
async function burst(allowed: Record<number, string | null>): Promise<Map<number, number>> {
  const replies: Reply[] = await Promise.all(Array.from({ length: BURST }, () => postJson(`${t.url}/v1/chat/completions`, body)));
  const counts = new Map<number, number>();
  for (const r of replies) {
    counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    expect(Object.keys(allowed).map(Number), `status ${r.status}: ${r.text.slice(0, 200)}`).toContain(r.status);
    if (r.status === 200) {
      expect(r.json).toMatchObject({ object: "chat.completion", choices: [{ finish_reason: expect.any(String) }] });
      continue;
    }
    expect(r.headers.get("retry-after"), `status ${r.status}`).toMatch(/^[1-9]\d*$/);
    expect(r.json.error).toEqual({
      message: expect.any(String),
      type: r.status === 429 ? "rate_limit_error" : "service_unavailable_error",
      param: null,
      code: allowed[r.status],
    });
  }
  expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(BURST);
  // The first arrivals hold the slots and queue places; they always finish.
  expect(counts.get(200) ?? 0).toBeGreaterThanOrEqual(PARALLEL + QUEUE);
  return counts;
}

async function requestCounts(): Promise<Map<string, number>> {
  const family = parsePrometheusText(await (await fetch(`${t.url}/metrics`)).text()).get("tabagent_requests_total");
  const out = new Map<string, number>();
  for (const s of family?.samples ?? []) if (s.labels.route === "/v1/chat/completions") out.set(s.labels.status!, (out.get(s.labels.status!) ?? 0) + s.value);
  return out;
}

describe("a burst of 40 requests on 2 slots and 4 queue places", () => {
  const seen = new Map<number, number>();
  const add = (counts: Map<number, number>) => counts.forEach((n, status) => seen.set(status, (seen.get(status) ?? 0) + n));

  it("before the model is loaded: each answer is 200, 503 model_loading or 429 queue_full, with Retry-After", async () => {
    add(await burst({ 200: null, 503: "model_loading", 429: "queue_full" }));
  });

  it("once it is loaded: each answer is 200 or 429 queue_full with Retry-After, and some are refused", async () => {
    const counts = await burst({ 200: null, 429: "queue_full" });
    expect(counts.get(429) ?? 0).toBeGreaterThanOrEqual(1);
    add(counts);
  });

  it("the metrics count what the clients saw; nothing is left running or queued; the daemon serves normally", async () => {
    const recorded = await requestCounts();
    for (const [status, n] of seen) expect(recorded.get(String(status)), `status ${status}`).toBe(n);
    const health = (await (await fetch(`${t.url}/health`)).json()) as { models: { id: string; running: number; queued: number }[] };
    expect(health.models.find((m) => m.id === "tiny-chat")).toMatchObject({ running: 0, queued: 0 });
    expect((await fetch(`${t.url}/ready`)).status).toBe(200);
    const r = await t.client.chat.completions.create({ ...body, max_tokens: 4, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe("length");
    const s = await t.client.chat.completions.create({ ...body, max_tokens: 4, stream: true });
    let chunks = 0;
    for await (const _ of s) chunks++;
    expect(chunks).toBeGreaterThan(1);
  });
});
