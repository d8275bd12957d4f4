import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { createDaemon } from "../../../src/server/createDaemon.js";
import { writeTinyChatModel } from "../../fixtures/makeTinyChatModel.js";
import { llamaServerBinary, pidsMatching } from "../../helpers/llamaServerBinary.js";
import { startServe } from "../../helpers/spawnCli.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { readSse } from "../../helpers/readSse.js";

const SECRET = "hf_sEcReTtOkEnThAtMuStNoTlEaK0123";
let binary: string;
let dir: string;
let chatModel: string;
let t: TestDaemon;
const env = () => ({ ...process.env, TABAGENT_LLAMA_SERVER: binary });

beforeAll(async () => {
  binary = await llamaServerBinary();
  dir = await mkdtemp(join(tmpdir(), "llama-server-"));
  await writeTinyChatModel(join(dir, "tiny-bitnet.gguf"), { architecture: "bitnet" });
  // A "binary" that dies at once with a reason on stderr, like a llama-server refusing a model; a library it loads
  // printed a token first (what a remote client must never see).
  await writeFile(
    join(dir, "broken-server"),
    `#!/bin/sh\necho 'hub: using HF_TOKEN=${SECRET}' >&2\necho 'error: unable to load model: unknown tensor type' >&2\nexit 1\n`,
  );
  await chmod(join(dir, "broken-server"), 0o755);
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

function startWith(models: object[]): Promise<TestDaemon> {
  return startTestDaemon({ models, contextSize: 2048 }, [], env());
}

describe("llama-server engine (real child process)", () => {
  beforeAll(async () => {
    const fx = (await import("../../fixtures/ensureFixtures.js")).ensureFixtures;
    const { chatModelPath, embeddingModelPath } = await fx();
    chatModel = chatModelPath;
    t = await startWith([
      { id: "srv-chat", path: chatModelPath, engine: "llama-server" },
      { id: "srv-embed", path: embeddingModelPath, engine: "llama-server" },
      { id: "local-chat", path: chatModelPath },
      { id: "local-embed", path: embeddingModelPath },
    ]);
  });

  it("chat and completions, streamed and not, match the in-process engine at temperature 0", async () => {
    const body = { messages: [{ role: "user" as const, content: "Hello" }], max_tokens: 24, temperature: 0 };
    const viaServer = await t.client.chat.completions.create({ ...body, model: "srv-chat" });
    const inProcess = await t.client.chat.completions.create({ ...body, model: "local-chat" });
    expect(viaServer.model).toBe("srv-chat");
    expect(viaServer.choices[0]!.message.content).toBe(inProcess.choices[0]!.message.content);
    expect(viaServer.usage).toEqual(inProcess.usage);
    const stream = await t.client.chat.completions.create({ ...body, model: "srv-chat", stream: true, stream_options: { include_usage: true } });
    let text = "";
    let pieces = 0;
    let usage;
    for await (const c of stream) {
      if (c.choices[0]?.delta.content) pieces++;
      text += c.choices[0]?.delta.content ?? "";
      usage = c.usage ?? usage;
    }
    expect(text).toBe(viaServer.choices[0]!.message.content);
    expect(pieces).toBeGreaterThan(10);
    expect(usage).toEqual(viaServer.usage);
    const c = await t.client.completions.create({ model: "srv-chat", prompt: "The cat", max_tokens: 8, temperature: 0 });
    const cl = await t.client.completions.create({ model: "local-chat", prompt: "The cat", max_tokens: 8, temperature: 0 });
    expect(c.choices[0]!.text).toBe(cl.choices[0]!.text);
  });

  it("embeddings match the in-process engine (to float rounding between the two builds)", async () => {
    const a = await t.client.embeddings.create({ model: "srv-embed", input: ["hello world", "the cat"] });
    const b = await t.client.embeddings.create({ model: "local-embed", input: ["hello world", "the cat"] });
    a.data.forEach((d, i) => {
      const other = b.data[i]!.embedding;
      const cosine = d.embedding.reduce((sum, x, j) => sum + x * other[j]!, 0);
      expect(cosine).toBeGreaterThan(0.99999);
    });
  });

  it("SIGKILL of the child mid-stream: one SSE error event, then an automatic restart serves the next request", async () => {
    await t.client.chat.completions.create({ model: "srv-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }); // loaded
    const pids = await pidsMatching(`--model ${chatModel}`); // the chat model's child only
    expect(pids).toHaveLength(1);
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "srv-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 2000, temperature: 0, stream: true }),
    });
    const text = await readSse(res, () => pids.forEach((pid) => process.kill(pid, "SIGKILL")));
    const last = JSON.parse(text.split("\n\n").filter(Boolean).at(-1)!.slice(6));
    expect(last.error).toMatchObject({ type: "server_error" });
    const again = await t.client.chat.completions.create({ model: "srv-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0 });
    expect(again.choices[0]!.finish_reason).toBe("length");
  });

  it("a BitNet GGUF is routed to the BitNet binary (here the standard build standing in for it)", async () => {
    const d = await startTestDaemon({ models: [{ id: "bitnet", path: join(dir, "tiny-bitnet.gguf") }] }, [], { ...env(), TABAGENT_LLAMA_SERVER_BITNET: binary });
    try {
      const m = (await d.client.models.retrieve("bitnet")) as unknown as { tabagent: { engine: string } };
      expect(m.tabagent.engine).toBe("llama-server-bitnet");
      const r = await d.client.completions.create({ model: "bitnet", prompt: "Hello", max_tokens: 4, temperature: 0 });
      expect(r.usage!.completion_tokens).toBe(4);
    } finally {
      await d.close();
    }
  });

  it("a BitNet GGUF with no BitNet binary anywhere → 503 naming the binary and how to provide it", async () => {
    const d = await startTestDaemon({ models: [{ id: "bitnet", path: join(dir, "tiny-bitnet.gguf") }] }, [], {
      PATH: "/usr/bin:/bin",
      TABAGENT_CACHE_DIR: join(dir, "empty-cache"),
    });
    try {
      const r = await postJson(`${d.url}/v1/completions`, { model: "bitnet", prompt: "x" });
      expect(r.status).toBe(503);
      expect(r.json.error).toMatchObject({ code: "engine_unavailable" });
      expect(r.json.error!.message).toMatch(/llama-server-bitnet.*build-llama-server\.sh --variant bitnet/s);
    } finally {
      await d.close();
    }
  });

  it("a child that fails to start: clients get what failed and its exit code, the log gets its stderr; no process is left", async () => {
    const fx = await (await import("../../fixtures/ensureFixtures.js")).ensureFixtures();
    const logged: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString("utf8")), done()) });
    const config = loadConfig({
      base: {
        host: "127.0.0.1",
        port: 0,
        threads: 1,
        gpu: "off",
        logLevel: "info",
        models: [{ id: "broken", path: fx.chatModelPath, engine: "llama-server", llamaServerPath: join(dir, "broken-server") }],
      },
    });
    const daemon = await createDaemon({ config, env: env(), logger: pino({ level: "info" }, sink) });
    const { url } = await daemon.listen();
    try {
      // Past the restart policy (5 failures in a minute) the model is paused: that answer must not quote it either.
      const answers = [];
      for (let i = 0; i < 7; i++) answers.push(await postJson(`${url}/v1/chat/completions`, { model: "broken", messages: [{ role: "user", content: "x" }] }));
      for (const r of answers) {
        expect(r.status).toBe(503);
        expect(r.text).not.toContain(SECRET);
        expect(r.text).not.toContain("unknown tensor type");
      }
      expect(answers[0]!.json.error).toMatchObject({
        code: "engine_start_failed",
        message: "The llama-server:broken process failed to start: it exited with code 1 while starting; its last output is in the daemon log.",
      });
      expect(answers.at(-1)!.json.error!.code).toBe("engine_failed");
      expect(answers.at(-1)!.json.error!.message).toMatch(/exited with code 1 while starting; its last output is in the daemon log/);
      const models = await (await fetch(`${url}/v1/models`)).text();
      expect(models).not.toContain(SECRET);
      const log = logged.join("");
      expect(log).toContain("unable to load model: unknown tensor type");
      expect(log).toContain(SECRET); // the operator's log keeps what the child said
      expect(await pidsMatching(join(dir, "broken-server"))).toEqual([]);
    } finally {
      await daemon.close();
    }
  });

  it("an idle TTL stops the child; the next request starts it again", async () => {
    const fx = await (await import("../../fixtures/ensureFixtures.js")).ensureFixtures();
    const d = await startTestDaemon({ idleTtlSeconds: 1, models: [{ id: "ttl", path: fx.chatModelPath, engine: "llama-server" }] }, [], env());
    try {
      await d.client.chat.completions.create({ model: "ttl", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
      const mine = d.daemon.processes.pids();
      expect(mine).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1800));
      expect(d.daemon.processes.pids()).toEqual([]);
      expect((await pidsMatching(binary)).filter((p) => mine.includes(p))).toEqual([]);
      const r = await d.client.chat.completions.create({ model: "ttl", messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0 });
      expect(r.choices[0]!.finish_reason).toBe("length");
    } finally {
      await d.close();
    }
  });

  it("daemon SIGTERM leaves no llama-server behind", async () => {
    const fx = await (await import("../../fixtures/ensureFixtures.js")).ensureFixtures();
    const config = join(dir, "serve.json");
    await writeFile(config, JSON.stringify({ models: [{ id: "c", path: fx.chatModelPath, engine: "llama-server" }] }));
    const before = new Set(await pidsMatching(binary));
    const s = await startServe(["--config", config], { TABAGENT_LLAMA_SERVER: binary });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
    await client.chat.completions.create({ model: "c", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
    expect((await pidsMatching(binary)).filter((p) => !before.has(p))).toHaveLength(1);
    s.child.kill("SIGTERM");
    expect((await s.child).exitCode).toBe(0);
    expect((await pidsMatching(binary)).filter((p) => !before.has(p))).toEqual([]);
  });
});
