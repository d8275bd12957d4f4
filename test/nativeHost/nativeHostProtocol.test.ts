// The host as a browser runs it: the launcher `tabagent native-host install` wrote, started with the caller's
// origin, frames on stdin/stdout, against a real daemon serving the tiny models.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { endianness, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeFrame } from "../../src/nativeHost/encodeFrames.js";
import { MAX_INCOMING_BYTES } from "../../src/nativeHost/nativeMessagingLimits.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { ensureTinyReranker } from "../fixtures/ensurePythonFixtures.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { runCli } from "../helpers/spawnCli.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { HostProcess, type HostMessage } from "./HostProcess.js";

const EXTENSION = "knldjmfmopnpolahpmmgbagdohdnhkik";
const ORIGIN = `chrome-extension://${EXTENSION}/`;
const hello = [{ role: "user", content: "Hello there" }];

let home: string;
let hub: FakeHub;
let t: TestDaemon;
let launcher: string;
const hosts: HostProcess[] = [];

function header(length: number): Buffer {
  const b = Buffer.alloc(4);
  new DataView(b.buffer, b.byteOffset).setUint32(0, length, endianness() === "LE");
  return b;
}

function startHost(args: string[] = [ORIGIN], env: NodeJS.ProcessEnv = {}): HostProcess {
  const { TABAGENT_CONFIG: _ignored, ...base } = process.env;
  const host = new HostProcess(launcher, args, { ...base, HOME: home, TABAGENT_URL: t.url, HF_ENDPOINT: hub.url, TABAGENT_LOG_LEVEL: "warn", ...env });
  hosts.push(host);
  return host;
}

async function psRunning(): Promise<number> {
  const ps = (await (await fetch(`${t.url}/api/ps`)).json()) as { inflight: { running: number } };
  return ps.inflight.running;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "nh-proto-"));
  const gguf = await readFile((await ensureFixtures()).chatModelPath);
  // 64 KiB chunks 60 ms apart: a pull of the half-megabyte model reports progress several times.
  hub = await startFakeHub({ "acme/tiny-chat-GGUF": { chunkDelayMs: 60, files: { "tiny-chat-Q8_0.gguf": gguf } } });
  // The tiny cross-encoder as GGUF, reranking in process (made by the Python fixtures, cached after the first run).
  const reranker = await ensureTinyReranker();
  t = await startTestDaemon(
    { ggufEngine: "node-llama-cpp", contextSize: 2048, storeDir: join(home, "store"), hubUrl: hub.url, discover: ["store"] },
    [{ id: "rr", path: reranker.gguf, engine: "node-llama-cpp" } as { id: string; path: string }],
    {},
  );
  // The chat template's sandbox starts with the first chat: on a busy machine that first render can time out, which
  // is the daemon's business, not the host's.
  for (let i = 0; i < 3; i++) {
    const ok = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 }).then(
      () => true,
      () => false,
    );
    if (ok) break;
  }
  const installed = await runCli(["native-host", "install", "--browser", "chromium", "--extension-id", EXTENSION, "--data-dir", join(home, "data")], { HOME: home });
  expect(installed.code, installed.stderr).toBe(0);
  const manifest = JSON.parse(await readFile(join(home, ".config/chromium/NativeMessagingHosts/com.tabagent.host.json"), "utf8")) as { path: string };
  launcher = manifest.path;
}, 120_000);

afterEach(async () => {
  for (const h of hosts.splice(0)) {
    // Whatever a test did, stdout carried frames only.
    expect(h.garbage).toEqual([]);
    h.kill();
  }
});

afterAll(async () => {
  await t?.close();
  await hub?.close();
  await rm(home, { recursive: true, force: true });
});

describe("native-messaging host: actions", () => {
  it("ping, status, system and models.list relay the daemon's answers", async () => {
    const host = startHost();
    const ping = await host.request({ id: 1, action: "ping" });
    expect(ping).toMatchObject({ id: 1, ok: true, result: { pong: true, daemon: { url: t.url } } });
    const status = await host.request({ id: "s", action: "status" });
    expect(status.ok).toBe(true);
    const models = (status.result as { models: { id: string; state: string }[] }).models;
    expect(models.map((m) => m.id)).toEqual(expect.arrayContaining(["tiny-chat", "tiny-embed"]));
    expect(models.every((m) => typeof m.state === "string")).toBe(true);
    const system = await host.request({ id: 3, action: "system" });
    expect(system.ok, JSON.stringify(system.error)).toBe(true);
    expect(system.result).toMatchObject({ daemon: { pid: process.pid }, report: expect.any(Object) as object });
    const list = await host.request({ id: 4, action: "models.list" });
    const direct = (await (await fetch(`${t.url}/api/models`)).json()) as { models: { id: string }[] };
    expect((list.result as typeof direct).models.map((m) => m.id)).toEqual(direct.models.map((m) => m.id));
    // Unknown parameters are refused, never ignored.
    expect(await host.request({ id: 5, action: "ping", verbose: true })).toMatchObject({ ok: false, error: { code: "invalid_request", param: "verbose" } });
    expect(await host.close()).toBe(0);
  });

  it("chat streams token events and answers the whole text, usage, finish reason and timings (greedy: the HTTP API's text)", async () => {
    const host = startHost();
    const reply = await host.request({ id: "c1", action: "chat", model: "tiny-chat", messages: hello, max_tokens: 12, temperature: 0 });
    expect(reply.ok, JSON.stringify(reply.error)).toBe(true);
    const result = reply.result as {
      choices: { text: string; finish_reason: string }[];
      usage: { completion_tokens: number };
      timings: { time_to_first_token_ms: number };
    };
    const tokens = host.events("c1", "token");
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens.map((e) => e.text).join("")).toBe(result.choices[0]!.text);
    expect(tokens.at(-1)).toMatchObject({ index: 0, tokens: tokens.length });
    expect(["stop", "length"]).toContain(result.choices[0]!.finish_reason);
    expect(result.usage.completion_tokens).toBeGreaterThan(0);
    expect(result.timings.time_to_first_token_ms).toBeGreaterThan(0);
    const direct = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello there" }], max_tokens: 12, temperature: 0 });
    expect(result.choices[0]!.text).toBe(direct.choices[0]!.message.content);
    // Replies come after every event of their request.
    expect(host.messages.indexOf(reply)).toBeGreaterThan(host.messages.indexOf(tokens.at(-1)!));

    const plain = await host.request({ id: "c2", action: "chat", model: "tiny-chat", messages: hello, max_tokens: 12, temperature: 0, stream: false });
    expect(plain.result).toMatchObject({ object: "chat.completion", choices: [{ message: { content: direct.choices[0]!.message.content } }] });
    expect(host.events("c2")).toEqual([]);
    // The daemon's own validation errors come back with its code and the parameter.
    expect(await host.request({ id: "c3", action: "chat", model: "tiny-chat", messages: hello, max_tokens: -1 })).toMatchObject({
      ok: false,
      error: { status: 400, param: "max_tokens" },
    });
    expect(await host.request({ id: "c4", action: "chat", model: "nope", messages: hello })).toMatchObject({
      ok: false,
      error: { code: "model_not_found", status: 404 },
    });
    expect(await host.request({ id: "c5", action: "chat", model: "tiny-chat", messages: hello, stream_options: { include_usage: false } })).toMatchObject({
      ok: false,
      error: { code: "invalid_request", param: "stream_options" },
    });
  });

  it("completions stream the same way", async () => {
    const host = startHost();
    const reply = await host.request({ id: 7, action: "completions", model: "tiny-chat", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    expect(reply.ok, JSON.stringify(reply.error)).toBe(true);
    const text = (reply.result as { choices: { text: string }[] }).choices[0]!.text;
    expect(
      host
        .events(7, "token")
        .map((e) => e.text)
        .join(""),
    ).toBe(text);
    const direct = await t.client.completions.create({ model: "tiny-chat", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    expect(text).toBe(direct.choices[0]!.text);
  });

  it("embeddings and rerank answer what the HTTP API answers; a reply over 1 MB arrives in parts that join to it", async () => {
    const host = startHost();
    const small = await host.request({ id: "e1", action: "embeddings", model: "tiny-embed", input: ["a cat", "a dog"] });
    const direct = (await (
      await fetch(`${t.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny-embed", input: ["a cat", "a dog"] }),
      })
    ).json()) as Record<string, unknown>;
    expect(small.result).toEqual(direct);
    expect(small.joinedParts).toBeUndefined();

    const input = Array.from({ length: 2000 }, (_, i) => `sentence number ${i}`);
    const big = await host.request({ id: "e2", action: "embeddings", model: "tiny-embed", input }, 120_000);
    expect(big.ok, JSON.stringify(big.error)).toBe(true);
    expect(big.joinedParts).toBeGreaterThan(1);
    const data = (big.result as { data: { index: number; embedding: number[] }[] }).data;
    expect(data).toHaveLength(2000);
    expect(data[0]!.embedding).toHaveLength(64);

    const rerankBody = { model: "rr", query: "a cat sat on the mat", documents: ["the cat sat", "stock prices fell", "a kitten on a rug"] };
    const res = await fetch(`${t.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(rerankBody) });
    expect(res.status).toBe(200);
    const rerankDirect = (await res.json()) as { results: { index: number; relevance_score: number }[] };
    const rerank = await host.request({ id: "r", action: "rerank", ...rerankBody });
    expect(rerank.ok, JSON.stringify(rerank.error)).toBe(true);
    expect((rerank.result as typeof rerankDirect).results).toEqual(rerankDirect.results);
    expect(await host.request({ id: "r2", action: "rerank", model: "tiny-chat", query: "q", documents: ["d"] })).toMatchObject({ ok: false, error: { status: 400 } });
  });

  it("models.detect reads a hub repo's headers and refuses local paths", async () => {
    const host = startHost();
    const d = await host.request({ id: 1, action: "models.detect", source: "acme/tiny-chat-GGUF" });
    expect(d.ok, JSON.stringify(d.error)).toBe(true);
    expect((d.result as { detections: { format: string; task: string }[] }).detections[0]).toMatchObject({ format: "gguf", task: "chat" });
    for (const [i, source] of ["/etc/passwd", "./acme/x", "../x/y", "~/models", t.fixtures.chatModelPath].entries()) {
      expect(await host.request({ id: 10 + i, action: "models.detect", source })).toMatchObject({ ok: false, error: { code: "invalid_source", param: "source" } });
    }
  });

  it("models.pull reports progress from the hub; the pulled model then loads, unloads and is deleted", async () => {
    const host = startHost();
    const pull = await host.request({ id: "p", action: "models.pull", source: "acme/tiny-chat-GGUF:Q8_0" }, 120_000);
    expect(pull.ok, JSON.stringify(pull.error)).toBe(true);
    const progress = host.events("p", "progress").map((e) => e.progress as { type: string; done_bytes?: number; total_bytes?: number });
    expect(progress[0]!.type).toBe("resolved");
    const bytes = progress.filter((p) => p.type === "progress");
    expect(bytes.length).toBeGreaterThan(1);
    expect(bytes.at(-1)!.done_bytes).toBeLessThanOrEqual(bytes.at(-1)!.total_bytes!);
    const id = (pull.result as { id: string }).id;
    expect(pull.result).toMatchObject({ type: "done", repo: "acme/tiny-chat-GGUF" });

    expect(await host.request({ id: "l", action: "models.load", model: id }, 60_000)).toMatchObject({ ok: true, result: { id, state: "loaded" } });
    expect(await host.request({ id: "u", action: "models.unload", model: id })).toMatchObject({ ok: true, result: { id, state: "unloaded", was_loaded: true } });
    expect(await host.request({ id: "d", action: "models.delete", model: id })).toMatchObject({ ok: true, result: { id, deleted: true } });
    expect(await host.request({ id: "d2", action: "models.delete", model: "tiny-chat" })).toMatchObject({ ok: false, error: { code: "not_removable", status: 403 } });
    expect(await host.request({ id: "l2", action: "models.load", model: "no-such-model" })).toMatchObject({ ok: false, error: { code: "model_not_found" } });
    expect(await host.request({ id: "p2", action: "models.pull", source: "not a repo" })).toMatchObject({ ok: false, error: { code: "invalid_source" } });
  });

  it("serves many requests at once, each answered under its own id", async () => {
    const host = startHost();
    const ids = ["a", "b", "c", "d"];
    for (const id of ids) host.send({ id, action: "chat", model: "tiny-chat", messages: [{ role: "user", content: `Hi ${id}` }], max_tokens: 16, temperature: 0 });
    for (let i = 0; i < 5; i++) host.send({ id: 100 + i, action: "ping" });
    host.send({ id: "emb", action: "embeddings", model: "tiny-embed", input: "x" });
    const replies = await Promise.all([...ids, 100, 101, 102, 103, 104, "emb"].map((id) => host.reply(id, 60_000)));
    expect(replies.every((r) => r.ok)).toBe(true);
    for (const id of ids) {
      const text = (replies[ids.indexOf(id)]!.result as { choices: { text: string }[] }).choices[0]!.text;
      expect(
        host
          .events(id, "token")
          .map((e) => e.text)
          .join(""),
      ).toBe(text);
    }
    // A second request under an id still running is refused; the first goes on.
    host.send({ id: "dup", action: "chat", model: "tiny-chat", messages: hello, max_tokens: 64, temperature: 0 });
    host.send({ id: "dup", action: "ping" });
    expect(await host.waitFor((m) => m.id === "dup" && m.ok === false)).toMatchObject({ error: { code: "duplicate_id" } });
    expect(await host.waitFor((m) => m.id === "dup" && m.ok === true, 60_000)).toBeDefined();
  });

  it("cancel stops a generation mid-stream: no token after the cancel's reply, and the daemon frees the slot", async () => {
    const host = startHost();
    host.send({ id: "long", action: "completions", model: "tiny-chat", prompt: "The", max_tokens: 1500, temperature: 0 });
    await host.waitFor((m) => m.id === "long" && m.event === "token" && (m.tokens as number) >= 3, 60_000);
    const cancel = await host.request({ id: "x", action: "cancel", target: "long" });
    expect(cancel).toMatchObject({ ok: true, result: { target: "long", cancelled: true } });
    const at = host.messages.indexOf(cancel);
    const reply = await host.reply("long");
    expect(reply).toMatchObject({ ok: false, error: { code: "cancelled" } });
    expect(host.messages.slice(at).filter((m) => m.id === "long" && m.event === "token")).toEqual([]);
    expect(host.events("long", "token").length).toBeLessThan(1500);
    expect(await waitUntil(async () => (await psRunning()) === 0, 5_000)).toBe(true);
    expect(await host.request({ id: "y", action: "cancel", target: "long" })).toMatchObject({ ok: true, result: { cancelled: false } });
  });
});

describe("native-messaging host: bad input", () => {
  it("answers each bad frame with an error and keeps serving", async () => {
    const host = startHost();
    const cases: [Buffer, string][] = [
      [encodeFrame("{not json"), "invalid_json"],
      [Buffer.concat([header(3), Buffer.from([0x7b, 0xff, 0x7d])]), "invalid_utf8"],
      [encodeFrame("[1,2,3]"), "invalid_request"],
      [encodeFrame('"just a string"'), "invalid_request"],
      [encodeFrame("null"), "invalid_request"],
      [header(0), "invalid_json"],
      [encodeFrame(JSON.stringify({ action: "ping" })), "missing_id"],
      [encodeFrame(JSON.stringify({ id: { x: 1 }, action: "ping" })), "invalid_id"],
      [encodeFrame(JSON.stringify({ id: 1.5, action: "ping" })), "invalid_id"],
    ];
    for (const [bytes, code] of cases) {
      const from = host.messages.length;
      host.sendRaw(bytes);
      expect(await host.waitFor(() => true, 10_000, from)).toMatchObject({ id: null, ok: false, error: { code } });
    }
    expect(await host.request({ id: 1, action: "explode" })).toMatchObject({ ok: false, error: { code: "unknown_action", param: "action" } });
    expect(await host.request({ id: 2, action: "__proto__" })).toMatchObject({ ok: false, error: { code: "unknown_action" } });
    expect(await host.request({ id: 3 })).toMatchObject({ ok: false, error: { code: "missing_action" } });
    // Over the cap: refused by its announced length, its bytes skipped, the next frame read.
    const from = host.messages.length;
    host.sendRaw(header(MAX_INCOMING_BYTES + 1));
    host.sendRaw(Buffer.alloc(MAX_INCOMING_BYTES + 1, 0x20));
    expect(await host.waitFor(() => true, 10_000, from)).toMatchObject({ id: null, ok: false, error: { code: "message_too_large" } });
    expect(await host.request({ id: 4, action: "ping" })).toMatchObject({ ok: true });
    // A message just under the cap is read (and relayed: the daemon refuses a body this size itself).
    expect(await host.request({ id: 5, action: "embeddings", model: "tiny-embed", input: "y".repeat(MAX_INCOMING_BYTES - 200) }, 60_000)).toMatchObject({ ok: false });
    expect(await host.request({ id: 6, action: "ping" })).toMatchObject({ ok: true });
  });

  it("1,000 random frames (seeded) get one error each, and the host still answers", async () => {
    const host = startHost();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const values = () => [rand(1000), "text", null, true, [rand(5)], { a: rand(9) }][rand(6)];
    const badIds = () => [null, true, [rand(5)], { a: 1 }, 1.5, ""][rand(6)];
    const frames: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const kind = rand(4);
      if (kind === 0) {
        const n = 1 + rand(64);
        frames.push(header(n), Buffer.from(Array.from({ length: n }, () => 0x80 + rand(128))));
      } else if (kind === 1) frames.push(encodeFrame(JSON.stringify(values())));
      else if (kind === 2) frames.push(encodeFrame(JSON.stringify({ id: `r${i}`, action: `act${rand(1e6)}`, x: values() })));
      else frames.push(encodeFrame(JSON.stringify({ id: i % 2 === 0 ? undefined : badIds(), action: "ping" })));
    }
    host.sendRaw(Buffer.concat(frames));
    await host.waitFor(() => host.messages.length >= 1000, 60_000);
    expect(host.messages).toHaveLength(1000);
    expect(host.messages.every((m) => m.ok === false && typeof m.error?.code === "string")).toBe(true);
    expect(await host.request({ id: "alive", action: "ping" })).toMatchObject({ ok: true });
  });

  it("a truncated last frame is reported; closing stdin ends the host with 0 and cancels its generations", async () => {
    const host = startHost();
    host.send({ id: "gen", action: "completions", model: "tiny-chat", prompt: "The", max_tokens: 1500, temperature: 0 });
    await host.waitFor((m) => m.id === "gen" && m.event === "token", 60_000);
    host.sendRaw(Buffer.concat([header(100), Buffer.from('{"id":')]));
    const started = Date.now();
    expect(await host.close()).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(host.messages.find((m) => m.id === null && m.error?.code === "truncated_message")).toBeDefined();
    expect(host.messages.find((m) => m.id === "gen" && m.ok === false)).toMatchObject({ error: { code: "cancelled" } });
    expect(await waitUntil(async () => (await psRunning()) === 0, 5_000)).toBe(true);
  });

  it("refuses a caller the manifests do not allow, and anything run without a browser's arguments", async () => {
    for (const args of [["chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"], [], ["https://example.com/"]]) {
      const host = startHost(args);
      expect(await host.exited).toBe(1);
      expect(host.messages).toEqual([
        expect.objectContaining({ id: null, ok: false, error: expect.objectContaining({ code: "origin_not_allowed" }) as object }) as HostMessage,
      ]);
    }
  });

  it("without a daemon: each action says none answers, and how to start one", async () => {
    const host = startHost([ORIGIN], { TABAGENT_URL: "http://127.0.0.1:9" });
    expect(await host.request({ id: 1, action: "ping" })).toMatchObject({ ok: false, error: { code: "daemon_unavailable" } });
    expect((await host.request({ id: 2, action: "chat", model: "m", messages: hello })).error?.message).toMatch(/tabagent serve/);
  });
});

describe("native-messaging host: starting the daemon", () => {
  it("with nativeHostAutoStart in the launcher's config, the first request starts `tabagent serve` and waits for it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nh-autostart-"));
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dataDir = join(dir, "daemon-data");
    const config = join(dir, "tabagent.json");
    await writeFile(
      config,
      JSON.stringify({
        host: "127.0.0.1",
        port,
        models: [{ id: "tiny-chat", path: t.fixtures.chatModelPath }],
        ggufEngine: "node-llama-cpp",
        gpu: "off",
        threads: 1,
        discover: [],
        dataDir,
        nativeHostAutoStart: true,
      }),
    );
    let daemonPid: number | null = null;
    try {
      const installed = await runCli(
        [
          "native-host",
          "install",
          "--browser",
          "chromium",
          "--extension-id",
          EXTENSION,
          "--dir",
          join(dir, "hosts"),
          "--data-dir",
          join(dir, "data"),
          "--config",
          config,
        ],
        { HOME: dir },
      );
      expect(installed.code, installed.stderr).toBe(0);
      const ownLauncher = (JSON.parse(await readFile(join(dir, "hosts", "com.tabagent.host.json"), "utf8")) as { path: string }).path;
      // The browser's environment: no TABAGENT_* settings, so the launcher's --config decides.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TABAGENT_")));
      const host = new HostProcess(ownLauncher, [ORIGIN], { ...env, HOME: dir });
      hosts.push(host);
      const ping = await host.request({ id: 1, action: "ping" }, 90_000);
      daemonPid = Number((await readFile(join(dataDir, "daemon.lock"), "utf8")).split("\n")[0]);
      expect(ping, host.stderr).toMatchObject({ ok: true, result: { daemon: { url: `http://127.0.0.1:${port}` } } });
      const chat = await host.request({ id: 2, action: "chat", model: "tiny-chat", messages: hello, max_tokens: 4, temperature: 0 }, 60_000);
      expect(chat.ok, JSON.stringify(chat.error)).toBe(true);
      // The daemon outlives the host that started it: it is the user's daemon from now on.
      expect(await host.close()).toBe(0);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).ok).toBe(true);
    } finally {
      if (daemonPid) {
        process.kill(daemonPid, "SIGTERM");
        await waitUntil(() => Promise.resolve(!isAlive(daemonPid!)), 30_000);
      }
      await rm(dir, { recursive: true, force: true });
    }
  }, 150_000);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
