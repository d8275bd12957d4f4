// Over the limits, on a real daemon (port 0): 503 model_loading while the model asked for is still loading, 429
// otherwise, both with Retry-After; queued requests whose client left are dropped from the queue. The engine is a
// stand-in whose loads and generations the test holds and releases, so every state is reached on purpose.
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { loadConfig } from "../../src/config/loadConfig.js";
import { abortable } from "../../src/core/abortable.js";
import type { ChatRequest, GenerationChunk, ModelDescriptor } from "../../src/core/types.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { postJson } from "../helpers/startTestDaemon.js";
import { parsePrometheusText } from "./metrics/parsePrometheusText.js";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Loads of `slow-*` models wait for `loadGate`; a chat whose last message is "hold" runs until `holdGate` opens or its client leaves. */
const gates = { load: deferred(), hold: deferred() };

class HeldBackend implements Backend {
  readonly parallel = 1;
  constructor(readonly descriptor: ModelDescriptor) {}
  async load(signal: AbortSignal): Promise<void> {
    if (this.descriptor.id.startsWith("slow-")) await abortable(gates.load.promise, signal);
  }
  async unload(): Promise<void> {}
  async *chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const content = request.messages.at(-1)?.content ?? "";
    if (content === "hold") await abortable(gates.hold.promise, signal);
    yield { type: "text", index: 0, text: `answer to ${content}` };
    yield { type: "finish", index: 0, reason: "stop" };
    yield { type: "usage", usage: { promptTokens: 1, completionTokens: 1 } };
  }
}

let daemon: Daemon;
let url: string;
beforeAll(async () => {
  const fx = await ensureFixtures();
  const models = ["slow-a", "slow-b", "fast"].map((id) => ({ id, path: fx.chatModelPath }));
  // One slot and two queue places per model; four requests in the daemon at once.
  const config = loadConfig({ base: { port: 0, models, ggufEngine: "node-llama-cpp", queueSize: 2, maxInflight: 4, logLevel: "silent" } });
  daemon = await createDaemon({ config, logger: pino({ level: "silent" }), backends: { "node-llama-cpp": (d) => new HeldBackend(d) } });
  url = (await daemon.listen()).url;
});
afterAll(async () => {
  gates.load.resolve();
  gates.hold.resolve();
  await daemon?.close();
});

interface Sent {
  controller: AbortController;
  result: Promise<Awaited<ReturnType<typeof postJson>> | null>;
  settled: boolean;
}

/** A chat request that can be abandoned (its connection closed) at any time. */
function send(model: string, content: string): Sent {
  const controller = new AbortController();
  const sent: Sent = { controller, settled: false, result: Promise.resolve(null) };
  sent.result = fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content }] }),
    signal: controller.signal,
  })
    .then(async (res) => ({ status: res.status, headers: res.headers, text: "", json: (await res.json()) as never }))
    .catch(() => null)
    .finally(() => (sent.settled = true));
  return sent;
}

function model(id: string) {
  return daemon.router.modelStatus(id)!;
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const family = parsePrometheusText(await (await fetch(`${url}/metrics`)).text()).get(name);
  const sample = family?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample?.value ?? 0;
}

function expectRefusal(r: Awaited<ReturnType<typeof postJson>> | null, status: number, code: string) {
  expect(r?.status).toBe(status);
  expect(Number(r!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  expect(r!.json.error).toMatchObject({ type: status === 429 ? "rate_limit_error" : "service_unavailable_error", code });
  expect(typeof r!.json.error!.message).toBe("string");
}

afterEach(async () => {
  // Nothing left running or waiting between tests.
  await waitFor(() => daemon.router.status().every((m) => m.running === 0 && m.queued === 0));
});

describe("over the limits while a model loads: 503 model_loading with Retry-After", () => {
  it("past a loading model's slot and queue; past the daemon's cap for a loading model; 429 for a model that is not loading", async () => {
    const burst = Array.from({ length: 10 }, () => send("slow-a", "quick"));
    // One holds the slot (waiting for the load), two wait in the queue, seven are refused.
    await waitFor(() => burst.filter((s) => s.settled).length === 7);
    expect(model("slow-a")).toMatchObject({ state: "loading", running: 1, queued: 2 });
    for (const s of burst.filter((b) => b.settled)) expectRefusal(await s.result, 503, "model_loading");

    // The daemon's cap (4): slow-b takes the last place and starts loading; past the cap, a request for a model that
    // is loading gets 503, one for a model that is not gets 429 server_busy.
    const b = send("slow-b", "quick");
    await waitFor(() => model("slow-b").state === "loading");
    expectRefusal(await postJson(`${url}/v1/chat/completions`, { model: "slow-b", messages: [{ role: "user", content: "x" }] }), 503, "model_loading");
    expectRefusal(await postJson(`${url}/v1/chat/completions`, { model: "fast", messages: [{ role: "user", content: "x" }] }), 429, "server_busy");

    gates.load.resolve();
    const admitted = await Promise.all([...burst.filter((s) => !s.settled), b].map((s) => s.result));
    expect(admitted.map((r) => r?.status)).toEqual([200, 200, 200, 200]);
    expect(model("slow-a").state).toBe("loaded");
  });

  it("once loaded, the same overflow is a 429 queue_full", async () => {
    gates.load.resolve();
    gates.hold = deferred();
    const running = send("slow-a", "hold");
    await waitFor(() => model("slow-a").running === 1);
    const queued = [send("slow-a", "quick"), send("slow-a", "quick")];
    await waitFor(() => model("slow-a").queued === 2);
    expectRefusal(await postJson(`${url}/v1/chat/completions`, { model: "slow-a", messages: [{ role: "user", content: "x" }] }), 429, "queue_full");
    gates.hold.resolve();
    expect((await Promise.all([running, ...queued].map((s) => s.result))).map((r) => r?.status)).toEqual([200, 200, 200]);
  });
});

describe("a queued request whose client leaves", () => {
  it("is dropped from the queue at once; its place is free, and the next queued request gets the slot", async () => {
    gates.hold = deferred();
    const running = send("fast", "hold");
    await waitFor(() => model("fast").running === 1);
    const first = send("fast", "first");
    await waitFor(() => model("fast").queued === 1);
    const second = send("fast", "second");
    await waitFor(() => model("fast").queued === 2);
    expectRefusal(await postJson(`${url}/v1/chat/completions`, { model: "fast", messages: [{ role: "user", content: "x" }] }), 429, "queue_full");

    first.controller.abort(); // the client closes its connection while its request waits
    await waitFor(() => model("fast").queued === 1, 2000);
    expect(await metric("tabagent_queue_depth", { model: "fast" })).toBe(1);
    // Its place in the queue is free again.
    const third = send("fast", "third");
    await waitFor(() => model("fast").queued === 2);

    // The running request's client leaves too: the slot goes to the next in line, in order.
    const order: string[] = [];
    void second.result.then(() => order.push("second"));
    void third.result.then(() => order.push("third"));
    running.controller.abort();
    const [r2, r3] = await Promise.all([second.result, third.result]);
    expect(r2?.status).toBe(200);
    expect((r2!.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe("answer to second");
    expect(r3?.status).toBe(200);
    expect(order).toEqual(["second", "third"]);
    expect(await first.result).toBeNull();
    expect(model("fast")).toMatchObject({ running: 0, queued: 0 });
    // Both abandoned requests are recorded as 499 (client closed request).
    await waitFor(async () => (await metric("tabagent_requests_total", { route: "/v1/chat/completions", model: "fast", status: "499" })) === 2, 2000);
  });
});
