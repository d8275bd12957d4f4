import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatFormatter } from "../../../src/api/openai/responseFormatters.js";
import { sendGeneration } from "../../../src/api/routes/sendGeneration.js";
import type { GenerationChunk } from "../../../src/core/types.js";
import { DaemonMetrics, type ModelSnapshot } from "../../../src/server/metrics/DaemonMetrics.js";
import { registerMetricsRoute, registerRequestMetrics } from "../../../src/server/metrics/registerMetricsRoute.js";
import { requestStartedAt } from "../../../src/api/requestStartedAt.js";
import { registerReadyRoute, type Readiness } from "../../../src/server/metrics/registerReadyRoute.js";
import { setRequestModel } from "../../../src/server/metrics/requestModel.js";
import { labelValues, parsePrometheusText, sampleValue, type MetricFamily } from "./parsePrometheusText.js";

const MODELS: ModelSnapshot[] = [
  { id: "tiny-chat", engine: "node-llama-cpp", state: "loaded", running: 0, queued: 0 },
  { id: "tiny-embed", engine: "node-llama-cpp", state: "unloaded", running: 0, queued: 0 },
];
const PIECES = ["Hel", "lo", ",", " wor", "ld"];

/** A generation that takes 2 ms per piece, like a very small model; it stops when the client is gone. */
async function* fakeEngine(signal: AbortSignal, pieces = PIECES): AsyncGenerator<GenerationChunk> {
  for (const text of pieces) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    if (signal.aborted) return;
    yield { type: "text", index: 0, text };
  }
  yield { type: "finish", index: 0, reason: "length" };
  yield { type: "usage", usage: { promptTokens: 11, completionTokens: pieces.length } };
}

let app: FastifyInstance;
let url: string;
let metrics: DaemonMetrics;
let readiness: Readiness = { ready: true };

beforeAll(async () => {
  metrics = new DaemonMetrics({ models: () => MODELS, restarts: () => [{ model: "tiny-chat", restarts: 1 }] });
  app = Fastify();
  registerRequestMetrics(app, metrics);
  registerMetricsRoute(app, metrics);
  registerReadyRoute(app, () => readiness);
  app.get<{ Params: { id: string } }>("/v1/models/:id", async (request, reply) => {
    setRequestModel(request, request.params.id);
    const model = MODELS.find((m) => m.id === request.params.id);
    if (!model) return reply.code(404).send({ error: { message: "no", type: "not_found_error", param: "model", code: "model_not_found" } });
    return { id: model.id, object: "model" };
  });
  // The shape of the real chat route: validate, name the model, generate with the metrics observer.
  app.post<{ Body: { model: string; stream?: boolean; pieces?: number } }>("/v1/chat/completions", async (request, reply) => {
    const { model, stream = false, pieces } = request.body;
    if (!MODELS.some((m) => m.id === model)) {
      return reply.code(404).send({ error: { message: "no", type: "not_found_error", param: "model", code: "model_not_found" } });
    }
    const controller = new AbortController();
    reply.raw.once("close", () => controller.abort());
    const observer = metrics.startGeneration(model, requestStartedAt(reply));
    return sendGeneration({
      request,
      reply,
      chunks: fakeEngine(controller.signal, pieces ? Array(pieces).fill("x") : PIECES),
      observe: (chunk) => observer.chunk(chunk),
      formatter: chatFormatter({ model, includeUsage: false }),
      stream,
      includeUsage: false,
    });
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
afterAll(async () => {
  await app?.close();
});

const post = (body: unknown) => fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

async function scrape(): Promise<Map<string, MetricFamily>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await res.text());
}

/** The close listener runs just after the client has its response: wait until the counter has caught up. */
async function until(check: (f: Map<string, MetricFamily>) => boolean): Promise<Map<string, MetricFamily>> {
  for (let i = 0; i < 100; i++) {
    const f = await scrape();
    if (check(f)) return f;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("metrics never caught up");
}

const requests = (f: Map<string, MetricFamily>, labels: Record<string, string>) => sampleValue(f, "tabagent_requests_total", labels) ?? 0;

describe("request metrics on a real server", () => {
  it("records generations, tokens, first-token and inter-token times, and parses as Prometheus text", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await post({ model: "tiny-chat", messages: [] });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe("Hello, world");
    }
    for (let i = 0; i < 2; i++) {
      const r = await post({ model: "tiny-chat", stream: true });
      expect(r.headers.get("content-type")).toMatch(/text\/event-stream/);
      expect(await r.text()).toMatch(/data: \[DONE\]\n\n$/);
    }
    const f = await until((f) => requests(f, { route: "/v1/chat/completions", model: "tiny-chat", status: "200" }) === 5);
    // Every family the daemon promises, with its type.
    const types: Record<string, string> = {
      tabagent_requests_total: "counter",
      tabagent_request_duration_seconds: "histogram",
      tabagent_tokens_total: "counter",
      tabagent_time_to_first_token_seconds: "histogram",
      tabagent_inter_token_latency_seconds: "histogram",
      tabagent_queue_depth: "gauge",
      tabagent_running_requests: "gauge",
      tabagent_model_loaded: "gauge",
      tabagent_model_load_duration_seconds: "histogram",
      tabagent_child_restarts_total: "counter",
      process_resident_memory_bytes: "gauge",
      nodejs_eventloop_lag_seconds: "gauge",
    };
    for (const [name, type] of Object.entries(types)) expect(f.get(name)?.type, name).toBe(type);
    expect(sampleValue(f, "tabagent_time_to_first_token_seconds_count", { model: "tiny-chat" })).toBe(5);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_count", { model: "tiny-chat" })).toBe(5 * (PIECES.length - 1));
    // 2 ms timers: every gap is at least about a millisecond, and far under a second.
    const itlSum = sampleValue(f, "tabagent_inter_token_latency_seconds_sum", { model: "tiny-chat" })!;
    expect(itlSum / (5 * (PIECES.length - 1))).toBeGreaterThan(0.0008);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_bucket", { model: "tiny-chat", le: "1" })).toBe(5 * (PIECES.length - 1));
    expect(sampleValue(f, "tabagent_tokens_total", { model: "tiny-chat", kind: "prompt" })).toBe(55);
    expect(sampleValue(f, "tabagent_tokens_total", { model: "tiny-chat", kind: "completion" })).toBe(25);
    expect(sampleValue(f, "tabagent_request_duration_seconds_count", { route: "/v1/chat/completions" })).toBeGreaterThanOrEqual(5);
    expect(sampleValue(f, "tabagent_model_loaded", { model: "tiny-chat", engine: "node-llama-cpp" })).toBe(1);
    expect(sampleValue(f, "tabagent_model_loaded", { model: "tiny-embed", engine: "node-llama-cpp" })).toBe(0);
    expect(sampleValue(f, "tabagent_child_restarts_total", { model: "tiny-chat" })).toBe(1);
    // A scrape is itself a request, recorded under its route (once its response has closed).
    await until((g) => requests(g, { route: "/metrics", model: "none", status: "200" }) >= 1);
  });

  it("keeps label cardinality bounded: random URLs and random model ids add no series", async () => {
    const before = await scrape();
    const series = (f: Map<string, MetricFamily>) => f.get("tabagent_requests_total")!.samples.filter((s) => s.labels.route !== "/metrics").length;
    const seriesBefore = series(before);
    for (let i = 0; i < 40; i++) {
      const random = Math.random().toString(36).slice(2);
      expect((await fetch(`${url}/v1/${random}/x?q=${random}`)).status).toBe(404);
      expect((await post({ model: `no-such-${random}` })).status).toBe(404);
      expect((await fetch(`${url}/v1/models/${random}`)).status).toBe(404);
    }
    const f = await until((f) => requests(f, { route: "unmatched", status: "404" }) === 40);
    expect(requests(f, { route: "unmatched", model: "none", status: "404" })).toBe(40);
    expect(requests(f, { route: "/v1/chat/completions", model: "unknown", status: "404" })).toBe(40);
    expect(requests(f, { route: "/v1/models/:id", model: "unknown", status: "404" })).toBe(40);
    const routes = new Set(["/v1/chat/completions", "/metrics", "unmatched", "/v1/models/:id", "/ready"]);
    for (const route of labelValues(f, "tabagent_requests_total", "route")) expect(routes).toContain(route);
    for (const model of labelValues(f, "tabagent_requests_total", "model")) expect(["tiny-chat", "tiny-embed", "none", "unknown"]).toContain(model);
    // 120 requests with random URLs and ids: three new series (one per route + status), however many ids.
    expect(series(f)).toBe(seriesBefore + 3);
    for (const family of f.values()) {
      for (const s of family.samples) for (const v of Object.values(s.labels)) expect(v).not.toMatch(/no-such-|\?q=/);
    }
  });

  it("records a known model from a path parameter and a stream the client abandons (499)", async () => {
    expect((await fetch(`${url}/v1/models/tiny-embed`)).status).toBe(200);
    const res = await post({ model: "tiny-chat", stream: true, pieces: 500 });
    const reader = res.body!.getReader();
    await reader.read(); // the stream has started
    await reader.cancel();
    const f = await until((f) => requests(f, { route: "/v1/chat/completions", status: "499" }) === 1);
    expect(requests(f, { route: "/v1/chat/completions", model: "tiny-chat", status: "499" })).toBe(1);
    expect(requests(f, { route: "/v1/models/:id", model: "tiny-embed", status: "200" })).toBe(1);
  });

  it("GET /ready: 200 while ready, 503 with the reason as the envelope's code while draining", async () => {
    const ok = await fetch(`${url}/ready`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: "ready" });
    readiness = { ready: false, reason: "draining" };
    try {
      const draining = await fetch(`${url}/ready`);
      expect(draining.status).toBe(503);
      expect(await draining.json()).toEqual({
        error: { message: "The server is not ready: draining.", type: "service_unavailable_error", param: null, code: "draining" },
      });
      expect((await fetch(`${url}/ready`, { method: "HEAD" })).status).toBe(503);
    } finally {
      readiness = { ready: true };
    }
  });
});
