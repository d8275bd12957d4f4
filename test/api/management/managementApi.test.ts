import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { startFakeHub, type FakeHub } from "../../helpers/fakeHub.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { tempDir } from "../../store/storeRepos.js";

interface ApiModel {
  id: string;
  format: string;
  task: string;
  engine: string | null;
  engine_reason: string | null;
  state: string;
  origin: string;
  removable: boolean;
  memory_bytes: number;
  size_bytes: number;
  path: string | null;
}

let hub: FakeHub;
let store: Awaited<ReturnType<typeof tempDir>>;
let t: TestDaemon;

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

async function send(method: string, url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method, headers });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string; type: string } } };
}

async function waitFor(cond: () => Promise<boolean>, ms = 10_000) {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SSE `data:` payloads of a pull, parsed. */
function events(text: string): Record<string, unknown>[] {
  return text
    .split("\n\n")
    .map((b) => b.trim())
    .filter((b) => b.startsWith("data: "))
    .map((b) => JSON.parse(b.slice(6)) as Record<string, unknown>);
}

beforeAll(async () => {
  const fixtures = await ensureFixtures();
  const gguf = await readFile(fixtures.chatModelPath);
  hub = await startFakeHub({
    // ~0.5 MB in 64 KiB chunks 40 ms apart: a few progress events, well under a second.
    "acme/tiny-chat-GGUF": { chunkDelayMs: 40, files: { "tiny-chat-Q8_0.gguf": gguf, "README.md": "# card" } },
    "acme/gated-GGUF": { gated: true, files: { "g-Q8_0.gguf": gguf } },
    // Slow enough (~1.2 s) that a client can leave mid-download.
    "acme/slow-GGUF": { chunkDelayMs: 150, files: { "slow-Q8_0.gguf": gguf } },
  });
  store = await tempDir("mgmt-store-");
  t = await startTestDaemon({ storeDir: store.path, hubUrl: hub.url, discover: [], contextSize: 2048, idleTtlSeconds: 0 }, [], {});
}, 120_000);

afterAll(async () => {
  await t?.close();
  await hub?.close();
  await store?.cleanup();
});

describe("GET /api/models", () => {
  it("lists every model with detection, engine and why, state, origin and memory", async () => {
    const { status, body } = await getJson<{ models: ApiModel[] }>(`${t.url}/api/models`);
    expect(status).toBe(200);
    const chat = body.models.find((m) => m.id === "tiny-chat")!;
    expect(chat).toMatchObject({ format: "gguf", task: "chat", state: "unloaded", origin: "config", removable: false, path: t.fixtures.chatModelPath });
    expect(chat.engine).toMatch(/node-llama-cpp|llama-server/);
    expect(chat.engine_reason).toEqual(expect.any(String));
    expect(chat.memory_bytes).toBeGreaterThan(chat.size_bytes);
    expect(body.models.find((m) => m.id === "tiny-embed")).toMatchObject({ task: "embeddings" });
  });
});

describe("load, unload and /api/ps", () => {
  it("loads a model, shows it in /api/ps with its memory, and unloads it", async () => {
    const load = await send("POST", `${t.url}/api/models/tiny-chat/load`);
    expect(load.status).toBe(200);
    expect(load.json).toMatchObject({ id: "tiny-chat", state: "loaded", load_ms: expect.any(Number), memory_bytes: expect.any(Number) });
    const ps = await getJson<{ models: { id: string; state: string; memory_bytes: number }[]; inflight: { requests: number }; memory: { loaded_bytes: number } }>(
      `${t.url}/api/ps`,
    );
    expect(ps.body.models).toEqual([expect.objectContaining({ id: "tiny-chat", state: "loaded" })]);
    expect(ps.body.memory.loaded_bytes).toBe(ps.body.models[0]!.memory_bytes);
    expect(ps.body.inflight.requests).toBeGreaterThanOrEqual(1); // this request
    const unload = await send("POST", `${t.url}/api/models/tiny-chat/unload`);
    expect(unload).toMatchObject({ status: 200, json: { id: "tiny-chat", state: "unloaded", was_loaded: true } });
    const again = await send("POST", `${t.url}/api/models/tiny-chat/unload`);
    expect(again.json).toMatchObject({ was_loaded: false });
    expect((await getJson<{ models: unknown[] }>(`${t.url}/api/ps`)).body.models).toEqual([]);
  });

  it("unknown models are 404; a body with fields is a 400 naming the field", async () => {
    expect((await send("POST", `${t.url}/api/models/nope/load`)).json.error).toMatchObject({ code: "model_not_found" });
    const r = await postJson(`${t.url}/api/models/tiny-chat/load`, { force: true });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: "force", code: "unknown_parameter" });
  });

  it("unload while a request is in flight is refused with 409 model_busy, and works once it is done", async () => {
    const controller = new AbortController();
    const pending = fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0 }),
      signal: controller.signal,
    }).catch(() => null);
    const running = async () => (await getJson<{ inflight: { running: number } }>(`${t.url}/api/ps`)).body.inflight.running;
    await waitFor(async () => (await running()) === 1);
    const busy = await send("POST", `${t.url}/api/models/tiny-chat/unload`);
    expect(busy.status).toBe(409);
    expect(busy.json.error).toMatchObject({ code: "model_busy", type: "invalid_request_error" });
    expect(busy.json.error!.message).toContain("1 running");
    controller.abort();
    await pending;
    await waitFor(async () => (await running()) === 0);
    expect(await send("POST", `${t.url}/api/models/tiny-chat/unload`)).toMatchObject({ status: 200, json: { was_loaded: true } });
  });
});

describe("POST /api/models/pull and DELETE /api/models/{id}", () => {
  it("streams progress from the hub, serves the model at once, and deletes it again", async () => {
    const res = await fetch(`${t.url}/api/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: "acme/tiny-chat-GGUF:Q8_0" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const all = events(await res.text());
    expect(all[0]).toMatchObject({ type: "resolved", repo: "acme/tiny-chat-GGUF", format: "gguf" });
    const total = all[0]!.total_bytes as number;
    const progress = all.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThanOrEqual(2);
    const last = progress.at(-1)!;
    expect(last).toMatchObject({ done_bytes: total, total_bytes: total });
    expect(progress.some((e) => typeof e.bytes_per_second === "number" && e.bytes_per_second > 0 && typeof e.eta_seconds === "number")).toBe(true);
    const done = all.at(-1)!;
    expect(done).toMatchObject({ type: "done", id: "acme--tiny-chat-GGUF:Q8_0", fetched_bytes: total, model: { origin: "store", removable: true, task: "chat" } });

    // Served at once, through the OpenAI API.
    const answer = await t.client.completions.create({ model: "acme--tiny-chat-GGUF:Q8_0", prompt: "hi", max_tokens: 3, temperature: 0 });
    expect(answer.choices[0]!.finish_reason).toBe("length");

    // A second pull finds everything in the store (non-streamed: one JSON answer).
    const again = await postJson(`${t.url}/api/models/pull`, { source: "acme/tiny-chat-GGUF:Q8_0", stream: false });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ type: "done", fetched_bytes: 0 });

    const del = await send("DELETE", `${t.url}/api/models/${encodeURIComponent("acme--tiny-chat-GGUF:Q8_0")}`);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ id: "acme--tiny-chat-GGUF:Q8_0", deleted: true });
    expect(del.json.freed_bytes).toBeGreaterThanOrEqual(total);
    const models = (await getJson<{ models: ApiModel[] }>(`${t.url}/api/models`)).body.models;
    expect(models.map((m) => m.id)).not.toContain("acme--tiny-chat-GGUF:Q8_0");
    const gone = await t.client.completions.create({ model: "acme--tiny-chat-GGUF:Q8_0", prompt: "hi", max_tokens: 1 }).catch((e: unknown) => e);
    expect((gone as { status?: number }).status).toBe(404);
  });

  it("a pull whose client went away stops, and the next pull resumes the partial file", async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.url}/api/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: "acme/slow-GGUF:Q8_0" }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes('"type":"progress"')) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    // The daemon stops downloading once the client is gone (the hub sees its request cut).
    await waitFor(async () => hub.stats.requests.some((r) => r.aborted === true));
    const second = await fetch(`${t.url}/api/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: "acme/slow-GGUF:Q8_0" }),
    });
    const all = events(await second.text());
    const file = all.find((e) => e.type === "file")!;
    expect(file.resume_from).toBeGreaterThan(0);
    const done = all.at(-1)!;
    expect(done).toMatchObject({ type: "done", resumed_bytes: file.resume_from });
    expect((done.resumed_bytes as number) + (done.fetched_bytes as number)).toBe(all[0]!.total_bytes);
    expect((await send("DELETE", `${t.url}/api/models/${encodeURIComponent("acme--slow-GGUF:Q8_0")}`)).status).toBe(200);
  });

  it("refuses a bad source and an unknown file as plain HTTP errors; a gated repo ends its stream with an error event", async () => {
    const bad = await postJson(`${t.url}/api/models/pull`, { source: "not a repo" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: "invalid_source" });
    const missing = await postJson(`${t.url}/api/models/pull`, { source: "acme/tiny-chat-GGUF:Q3_K_S" });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toMatchObject({ code: "invalid_source" });
    // Without a token the hub answers an unknown repo as it answers a gated one.
    expect((await postJson(`${t.url}/api/models/pull`, { source: "acme/nothing-here" })).json.error).toMatchObject({ code: "repo_gated" });
    // A gated repo lists its files to anyone: the stream starts, and the download's refusal is its error event.
    const gated = await postJson(`${t.url}/api/models/pull`, { source: "acme/gated-GGUF" });
    expect(gated.status).toBe(200);
    const gatedEvents = events(gated.text);
    expect(gatedEvents[0]).toMatchObject({ type: "resolved" });
    expect(gatedEvents.at(-1)).toMatchObject({ type: "error", error: { code: "repo_gated", type: "permission_error" } });
    const noSource = await postJson(`${t.url}/api/models/pull`, {});
    expect(noSource.json.error).toMatchObject({ code: "missing_required_parameter", param: "source" });
  });

  it("refuses to delete a model it did not pull, and leaves its file alone", async () => {
    const r = await send("DELETE", `${t.url}/api/models/tiny-chat`);
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ code: "not_removable", type: "permission_error" });
    await readFile(t.fixtures.chatModelPath);
    expect((await getJson<{ models: ApiModel[] }>(`${t.url}/api/models`)).body.models.map((m) => m.id)).toContain("tiny-chat");
    expect((await send("DELETE", `${t.url}/api/models/nope`)).status).toBe(404);
  });
});

describe("GET /api/stats and /api/system", () => {
  it("counts API requests and tokens", async () => {
    const before = (await getJson<{ requests_total: number; completion_tokens_total: number }>(`${t.url}/api/stats`)).body;
    await t.client.completions.create({ model: "tiny-chat", prompt: "hi", max_tokens: 3, temperature: 0 });
    const after = (await getJson<{ requests_total: number; completion_tokens_total: number }>(`${t.url}/api/stats`)).body;
    expect(after.requests_total).toBe(before.requests_total + 1);
    expect(after.completion_tokens_total).toBe(before.completion_tokens_total + 3);
  });
  it("reports the machine (the doctor report) and the daemon", async () => {
    const { status, body } = await getJson<{ daemon: { pid: number }; memory: { total_bytes: number }; report: { cpu: { count: number }; engines: { name: string }[] } }>(
      `${t.url}/api/system`,
    );
    expect(status).toBe(200);
    expect(body.daemon.pid).toBe(process.pid);
    expect(body.memory.total_bytes).toBeGreaterThan(0);
    expect(body.report.cpu.count).toBeGreaterThan(0);
    expect(body.report.engines.map((e) => e.name)).toContain("node-llama-cpp");
  }, 60_000);
});
