import { describe, expect, it } from "vitest";
import type { GenerationChunk } from "../../../src/core/types.js";
import { DaemonMetrics, type ModelSnapshot } from "../../../src/server/metrics/DaemonMetrics.js";
import { labelValues, parsePrometheusText, sampleValue } from "./parsePrometheusText.js";

const scrape = async (m: DaemonMetrics) => parsePrometheusText(await m.scrape());

async function* fakeGeneration(pieces: string[], gapMs: number): AsyncGenerator<GenerationChunk> {
  for (const text of pieces) {
    await new Promise((resolve) => setTimeout(resolve, gapMs));
    yield { type: "text", index: 0, text };
  }
  yield { type: "finish", index: 0, reason: "length" };
  yield { type: "usage", usage: { promptTokens: 7, completionTokens: pieces.length } };
}

describe("DaemonMetrics", () => {
  it("several instances in one process keep separate registries (process metrics included)", async () => {
    const a = new DaemonMetrics();
    const b = new DaemonMetrics();
    a.observeRequest("/v1/chat/completions", undefined, 200, 0.01);
    const [fa, fb] = [await scrape(a), await scrape(b)];
    expect(sampleValue(fa, "tabagent_requests_total", { route: "/v1/chat/completions", status: "200" })).toBe(1);
    expect(sampleValue(fb, "tabagent_requests_total", { route: "/v1/chat/completions", status: "200" })).toBeUndefined();
    for (const f of [fa, fb]) {
      expect(f.get("process_cpu_user_seconds_total")?.type).toBe("counter");
      expect(f.get("nodejs_heap_size_used_bytes")?.type).toBe("gauge");
      expect(f.get("tabagent_request_duration_seconds")?.type).toBe("histogram");
    }
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("labels: known ids as themselves, unknown ids as 'unknown', no model as 'none', past the cap 'other'", () => {
    const known = new Set(["a", "b", "c"]);
    const m = new DaemonMetrics({ processMetrics: false, isKnownModel: (id) => known.has(id), maxModelLabels: 2 });
    expect(m.modelLabel("a")).toBe("a");
    expect(m.modelLabel("nope")).toBe("unknown");
    expect(m.modelLabel(undefined)).toBe("none");
    expect(m.modelLabel("")).toBe("none");
    expect(m.modelLabel("b")).toBe("b");
    expect(m.modelLabel("c")).toBe("other");
    expect(m.modelLabel("a")).toBe("a");
  });

  it("without isKnownModel, an id is known when the models callback lists it", () => {
    const m = new DaemonMetrics({ processMetrics: false, models: () => [{ id: "x", engine: null, state: "unloaded", running: 0, queued: 0 }] });
    expect(m.modelLabel("x")).toBe("x");
    expect(m.modelLabel("y")).toBe("unknown");
  });

  it("times a generation as the engine produces it and counts its tokens", async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    const started = performance.now();
    const seen: GenerationChunk[] = [];
    const observer = m.startGeneration("tiny", started);
    for await (const c of fakeGeneration(["a", "b", "c", "d"], 5)) {
      observer.chunk(c);
      seen.push(c);
    }
    expect(seen.map((c) => c.type)).toEqual(["text", "text", "text", "text", "finish", "usage"]);
    const f = await scrape(m);
    expect(sampleValue(f, "tabagent_time_to_first_token_seconds_count", { model: "tiny" })).toBe(1);
    expect(sampleValue(f, "tabagent_time_to_first_token_seconds_sum", { model: "tiny" })).toBeGreaterThanOrEqual(0.004);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_count", { model: "tiny" })).toBe(3);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_sum", { model: "tiny" })).toBeGreaterThanOrEqual(0.012);
    // 1 ms is the smallest first-token bucket, 0.1 ms the smallest inter-token one; 10 s and 1 s the largest.
    expect(sampleValue(f, "tabagent_time_to_first_token_seconds_bucket", { model: "tiny", le: "0.001" })).toBe(0);
    expect(sampleValue(f, "tabagent_time_to_first_token_seconds_bucket", { model: "tiny", le: "10" })).toBe(1);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_bucket", { model: "tiny", le: "0.0001" })).toBe(0);
    expect(sampleValue(f, "tabagent_inter_token_latency_seconds_bucket", { model: "tiny", le: "1" })).toBe(3);
    expect(sampleValue(f, "tabagent_tokens_total", { model: "tiny", kind: "prompt" })).toBe(7);
    expect(sampleValue(f, "tabagent_tokens_total", { model: "tiny", kind: "completion" })).toBe(4);

    m.observeTokens("tiny", 3, 0); // an embedding request
    m.observeFirstToken("tiny", 0.5);
    m.observeInterToken("tiny", 0.002);
    const g = await scrape(m);
    expect(sampleValue(g, "tabagent_tokens_total", { model: "tiny", kind: "prompt" })).toBe(10);
    expect(sampleValue(g, "tabagent_time_to_first_token_seconds_count", { model: "tiny" })).toBe(2);
    expect(sampleValue(g, "tabagent_inter_token_latency_seconds_count", { model: "tiny" })).toBe(4);
  });

  it("reads queue, running, loaded and restarts from the callbacks at each scrape", async () => {
    let snapshot: ModelSnapshot[] = [
      { id: "chat", engine: "node-llama-cpp", state: "loaded", running: 2, queued: 3 },
      { id: "embed", engine: "llama-server", state: "unloaded", running: 0, queued: 0 },
      { id: "broken", engine: null, state: "unloaded", running: 0, queued: 0 },
    ];
    let restarts = [{ model: "embed", restarts: 2 }];
    let calls = 0;
    const m = new DaemonMetrics({
      processMetrics: false,
      models: () => {
        calls++;
        return snapshot;
      },
      restarts: () => restarts,
    });
    const f = await scrape(m);
    expect(sampleValue(f, "tabagent_queue_depth", { model: "chat" })).toBe(3);
    expect(sampleValue(f, "tabagent_running_requests", { model: "chat" })).toBe(2);
    expect(sampleValue(f, "tabagent_model_loaded", { model: "chat", engine: "node-llama-cpp" })).toBe(1);
    expect(sampleValue(f, "tabagent_model_loaded", { model: "embed", engine: "llama-server" })).toBe(0);
    expect(sampleValue(f, "tabagent_model_loaded", { model: "broken", engine: "none" })).toBe(0);
    expect(sampleValue(f, "tabagent_child_restarts_total", { model: "embed" })).toBe(2);
    expect(f.get("tabagent_child_restarts_total")?.type).toBe("counter");

    snapshot = [{ id: "chat", engine: "node-llama-cpp", state: "unloading", running: 0, queued: 0 }];
    restarts = [{ model: "embed", restarts: 3 }];
    const callsBefore = calls;
    const g = await scrape(m);
    expect(calls - callsBefore).toBe(1); // one snapshot per scrape, not one per gauge
    expect(sampleValue(g, "tabagent_model_loaded", { model: "chat" })).toBe(0);
    expect(sampleValue(g, "tabagent_queue_depth", { model: "embed" })).toBeUndefined();
    expect(sampleValue(g, "tabagent_child_restarts_total", { model: "embed" })).toBe(3);
  });

  it("records load durations by model and engine", async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    m.observeLoad("chat", "node-llama-cpp", 0.3);
    m.observeLoad("chat", "node-llama-cpp", 2);
    const f = await scrape(m);
    expect(sampleValue(f, "tabagent_model_load_duration_seconds_count", { model: "chat", engine: "node-llama-cpp" })).toBe(2);
    expect(sampleValue(f, "tabagent_model_load_duration_seconds_bucket", { model: "chat", engine: "node-llama-cpp", le: "0.5" })).toBe(1);
  });

  it("bounds route labels and escapes odd label values in the text format", async () => {
    const m = new DaemonMetrics({ processMetrics: false, maxRouteLabels: 3, isKnownModel: () => true });
    for (let i = 0; i < 10; i++) m.observeRequest(`/r${i}`, 'we"ird\\id\nx', 200, 0.001);
    const f = await scrape(m);
    expect(labelValues(f, "tabagent_request_duration_seconds_count", "route")).toEqual(new Set(["/r0", "/r1", "/r2", "other"]));
    expect(labelValues(f, "tabagent_requests_total", "model")).toEqual(new Set(['we"ird\\id\nx']));
    expect(sampleValue(f, "tabagent_requests_total", { route: "other" })).toBe(7);
  });
});
