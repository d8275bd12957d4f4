import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { createDaemon } from "../../../src/server/createDaemon.js";
import { pidsMatching } from "../../helpers/llamaServerBinary.js";
import { ensureTinyLlm, miniLmSource, pythonExecutable } from "../../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { readSse } from "../../helpers/readSse.js";
import { argAfter, childProcessInfo, rawRequest } from "../llamaServer/childProbe.js";

const run = promisify(execFile);
let llm: string;
let minilm: string;
let dir: string;
let python: string;
let t: TestDaemon;
const env = () => ({ ...process.env, TABAGENT_PYTHON: python });

/** What transformers itself answers, for comparison: greedy generate() text and sentence-transformers vectors. */
async function pythonReference(code: string): Promise<unknown> {
  const { stdout } = await run(python, ["-c", code], { env: { ...process.env, HF_HUB_OFFLINE: "1" }, maxBuffer: 32 << 20 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  a.forEach((x, i) => {
    dot += x * b[i]!;
    na += x * x;
    nb += b[i]! * b[i]!;
  });
  return dot / Math.sqrt(na * nb);
}

/** The sidecar's own /health: `active` counts the generations it is running. */
async function sidecarActive(model: string): Promise<number> {
  const pids = await pidsMatching(`--id ${model} `);
  expect(pids.length).toBe(1);
  const { argv, env } = await childProcessInfo(pids[0]!);
  const res = await rawRequest({ socketPath: argAfter(argv, "--socket")! }, { path: "/health", headers: { authorization: `Bearer ${env.TABAGENT_SIDECAR_KEY}` } });
  return (JSON.parse(res.body) as { active: number }).active;
}

beforeAll(async () => {
  [llm, minilm, python] = await Promise.all([ensureTinyLlm(), miniLmSource(), pythonExecutable()]);
  dir = await mkdtemp(join(tmpdir(), "transformers-"));
  t = await startTestDaemon(
    {
      contextSize: 2048,
      models: [
        { id: "hf-chat", path: llm },
        { id: "hf-embed", path: minilm },
      ],
    },
    [],
    env(),
  );
}, 120_000);
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("transformers engine (real Python sidecar)", () => {
  it("routes the safetensors folders to the transformers engine", async () => {
    const models = await t.client.models.list();
    const byId = Object.fromEntries(models.data.map((m) => [m.id, (m as unknown as { tabagent: { engine: string; task: string } }).tabagent]));
    expect(byId["hf-chat"]).toMatchObject({ engine: "transformers", task: "chat" });
    expect(byId["hf-embed"]).toMatchObject({ engine: "transformers", task: "embeddings" });
  });

  it("greedy completions match transformers' own generate(), streamed and not, with engine-counted usage", async () => {
    const ref = (await pythonReference(`
import json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(${JSON.stringify(llm)}); m = AutoModelForCausalLM.from_pretrained(${JSON.stringify(llm)}).eval()
ids = tok("The sky is", return_tensors="pt").input_ids
out = m.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
print(json.dumps({"text": tok.decode(out, skip_special_tokens=True), "prompt": ids.shape[1], "n": len(out)}))
`)) as { text: string; prompt: number; n: number };
    const plain = await t.client.completions.create({ model: "hf-chat", prompt: "The sky is", max_tokens: 24, temperature: 0 });
    expect(plain.choices[0]!.text).toBe(ref.text);
    expect(plain.usage).toMatchObject({ prompt_tokens: ref.prompt, completion_tokens: ref.n });
    const stream = await t.client.completions.create({
      model: "hf-chat",
      prompt: "The sky is",
      max_tokens: 24,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let pieces = 0;
    let usage;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) {
        text += chunk.choices[0].text;
        pieces++;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(ref.text);
    expect(pieces).toBeGreaterThan(5);
    expect(usage).toMatchObject({ prompt_tokens: ref.prompt, completion_tokens: ref.n });
  });

  it("chat uses the tokenizer's chat template; seeded sampling repeats; a stop sequence cuts the answer", async () => {
    const ask = (extra: object) => t.client.chat.completions.create({ model: "hf-chat", messages: [{ role: "user", content: "Hello there" }], max_tokens: 20, ...extra });
    const greedy = await ask({ temperature: 0 });
    expect(greedy.choices[0]!.finish_reason).toBe("length");
    // ChatML around one user message: the prompt count proves the template was applied.
    const bare = await t.client.completions.create({ model: "hf-chat", prompt: "Hello there", max_tokens: 1, temperature: 0 });
    expect(greedy.usage!.prompt_tokens).toBeGreaterThan(bare.usage!.prompt_tokens + 4);
    const a = await ask({ temperature: 0.9, top_p: 0.9, seed: 7 });
    const b = await ask({ temperature: 0.9, top_p: 0.9, seed: 7 });
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    const content = greedy.choices[0]!.message.content!;
    const stop = content.slice(6, 9);
    const cut = await ask({ temperature: 0, stop: [stop] });
    expect(cut.choices[0]!.finish_reason).toBe("stop");
    expect(cut.choices[0]!.message.content).toBe(content.slice(0, content.indexOf(stop)));
  });

  it("embeddings match sentence-transformers (cosine ≥ 0.9999) and rank similar sentences closer", async () => {
    const sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.", "A monkey is playing drums."];
    const ref = (await pythonReference(`
import json
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(${JSON.stringify(minilm)}, device="cpu")
print(json.dumps(m.encode(${JSON.stringify(sentences)}).tolist()))
`)) as number[][];
    const res = await t.client.embeddings.create({ model: "hf-embed", input: sentences });
    expect(res.data).toHaveLength(4);
    res.data.forEach((d, i) => expect(cosine(d.embedding, ref[i]!)).toBeGreaterThanOrEqual(0.9999));
    const v = res.data.map((d) => d.embedding);
    expect(cosine(v[0]!, v[1]!)).toBeGreaterThan(cosine(v[0]!, v[2]!));
    expect(cosine(v[0]!, v[1]!)).toBeGreaterThan(cosine(v[0]!, v[3]!));
    expect(res.usage.prompt_tokens).toBeGreaterThan(20);
    const wrong = await postJson(`${t.url}/v1/embeddings`, { model: "hf-chat", input: "x" });
    expect(wrong.status).toBe(400);
  });

  it("a client that hangs up mid-stream stops the generation; the sidecar serves the next request", async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hf-chat", prompt: "Once upon a time", max_tokens: 1500, temperature: 0, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(await sidecarActive("hf-chat")).toBe(1);
    controller.abort();
    const deadline = Date.now() + 2_000;
    while ((await sidecarActive("hf-chat")) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await sidecarActive("hf-chat")).toBe(0);
    const next = await t.client.completions.create({ model: "hf-chat", prompt: "Hi", max_tokens: 3, temperature: 0 });
    expect(next.choices[0]!.finish_reason).toBe("length");
  });

  it("four concurrent streams each get the answer they would get alone", async () => {
    const prompts = ["The sky is", "Hello world", "Once upon", "Numbers: 1 2"];
    const alone = [];
    for (const prompt of prompts) alone.push((await t.client.completions.create({ model: "hf-chat", prompt, max_tokens: 16, temperature: 0 })).choices[0]!.text);
    const together = await Promise.all(
      prompts.map(async (prompt) => {
        let text = "";
        for await (const c of await t.client.completions.create({ model: "hf-chat", prompt, max_tokens: 16, temperature: 0, stream: true }))
          text += c.choices[0]?.text ?? "";
        return text;
      }),
    );
    expect(together).toEqual(alone);
  });

  it("bad requests get a 400 envelope from the daemon or the sidecar, and it keeps serving", async () => {
    const long = await postJson(`${t.url}/v1/completions`, { model: "hf-chat", prompt: "word ".repeat(3000), max_tokens: 4, temperature: 0 });
    expect(long.status).toBe(400);
    expect(long.text).toMatch(/context/);
    const ok = await t.client.completions.create({ model: "hf-chat", prompt: "Hi", max_tokens: 2, temperature: 0 });
    expect(ok.choices[0]!.finish_reason).toBe("length");
  });

  it("SIGKILL of the sidecar mid-stream: one SSE error event, then an automatic restart serves the next request", async () => {
    const pids = await pidsMatching("--id hf-chat ");
    expect(pids).toHaveLength(1);
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "hf-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1500, temperature: 0, stream: true }),
    });
    const text = await readSse(res, () => pids.forEach((pid) => process.kill(pid, "SIGKILL")));
    const events = text.split("\n\n").filter(Boolean);
    expect(events.filter((e) => e.includes('"error"'))).toHaveLength(1);
    expect(JSON.parse(events.at(-1)!.slice(6)).error).toMatchObject({ type: "server_error" });
    const again = await t.client.chat.completions.create({ model: "hf-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0 });
    expect(again.choices[0]!.finish_reason).toBe("length");
    const after = await pidsMatching("--id hf-chat ");
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(pids[0]);
  }, 60_000);

  it("closing the daemon stops every sidecar; no process is left behind", async () => {
    expect(await pidsMatching("--id hf-embed ")).toHaveLength(1);
    await t.close();
    expect(await pidsMatching("tabagent_sidecar --model")).toEqual([]);
  });
});

describe("transformers engine refusals and failures", () => {
  it("custom code without trustRemoteCode and pickle-only weights are refused with a clear 400; the daemon keeps serving", async () => {
    const custom = join(dir, "custom");
    const pickle = join(dir, "pickle");
    await cp(llm, custom, { recursive: true });
    const config = JSON.parse(await readFile(join(custom, "config.json"), "utf8"));
    await writeFile(join(custom, "config.json"), JSON.stringify({ ...config, auto_map: { AutoModelForCausalLM: "modeling_evil.EvilForCausalLM" } }));
    await cp(llm, pickle, { recursive: true });
    await rm(join(pickle, "model.safetensors"));
    await writeFile(join(pickle, "pytorch_model.bin"), Buffer.from("PK\x03\x04 not really a checkpoint"));
    const d = await startTestDaemon(
      {},
      [
        { id: "custom", path: custom },
        { id: "pickle", path: pickle },
      ],
      env(),
    );
    try {
      const a = await postJson(`${d.url}/v1/completions`, { model: "custom", prompt: "Hi", max_tokens: 2 });
      expect(a.status).toBe(400);
      expect(a.text).toMatch(/custom code.*trustRemoteCode/);
      const b = await postJson(`${d.url}/v1/completions`, { model: "pickle", prompt: "Hi", max_tokens: 2, temperature: 0 });
      expect(b.status).toBe(400);
      expect(b.text).toMatch(/pickle/);
      const ok = await d.client.completions.create({ model: "tiny-chat", prompt: "Hi", max_tokens: 2, temperature: 0 });
      expect(ok.choices[0]!.finish_reason).toBe("length");
      expect(await pidsMatching(`--model ${custom}`)).toHaveLength(0);
    } finally {
      await d.close();
    }
  });

  it("no Python environment: the error names the setup command; a failing automatic setup says what to run", async () => {
    const none = await startTestDaemon({ models: [{ id: "hf", path: llm }], pythonAutoSetup: false, dataDir: join(dir, "empty-data") }, [], {
      ...process.env,
      TABAGENT_PYTHON: "",
    });
    try {
      const res = await postJson(`${none.url}/v1/completions`, { model: "hf", prompt: "Hi", max_tokens: 2 });
      expect(res.status).toBe(503);
      expect(res.text).toContain("tabagent setup python");
    } finally {
      await none.close();
    }
    const auto = await startTestDaemon({ models: [{ id: "hf", path: llm }], pythonAutoSetup: true, dataDir: join(dir, "auto-data") }, [], {
      ...process.env,
      TABAGENT_PYTHON: "",
      TABAGENT_PYTHON_BASE: join(dir, "no-such-python3"),
    });
    try {
      const first = await postJson(`${auto.url}/v1/completions`, { model: "hf", prompt: "Hi", max_tokens: 2 });
      expect(first.status).toBe(503);
      expect(first.headers.get("retry-after")).toBe("30");
      expect(first.text).toContain("engine_installing");
      let last = first;
      for (let i = 0; i < 50 && last.text.includes("engine_installing"); i++) {
        await new Promise((r) => setTimeout(r, 100));
        last = await postJson(`${auto.url}/v1/completions`, { model: "hf", prompt: "Hi", max_tokens: 2 });
      }
      expect(last.status).toBe(503);
      expect(last.json.error).toMatchObject({ code: "python_setup_failed" });
      expect(last.json.error!.message).toMatch(/native\/setup-python\.sh exited with code 3\. Fix the cause .*`tabagent setup python` again/);
      expect(last.text).not.toContain("no-such-python3"); // the script's output (local paths) is for the log
    } finally {
      await auto.close();
    }
  });

  it("a device this machine lacks fails the load with a 503 naming the exit code, torch's reason in the log; the daemon keeps serving", async () => {
    const logged: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString("utf8")), done()) });
    const config = loadConfig({
      base: {
        host: "127.0.0.1",
        port: 0,
        threads: 1,
        gpu: "off",
        logLevel: "info",
        models: [
          { id: "on-gpu", path: llm, device: "cuda:0" },
          { id: "hf-ok", path: llm },
        ],
      },
    });
    const daemon = await createDaemon({ config, env: env(), logger: pino({ level: "info" }, sink) });
    const { url } = await daemon.listen();
    try {
      const res = await postJson(`${url}/v1/completions`, { model: "on-gpu", prompt: "Hi", max_tokens: 2 });
      expect(res.status).toBe(503);
      expect(res.json.error).toMatchObject({
        code: "engine_start_failed",
        message: "The transformers:on-gpu process failed to start: it exited with code 3 while starting; its last output is in the daemon log.",
      });
      expect(logged.join("")).toMatch(/device 'cuda:0' was asked for, but torch sees no CUDA device/);
      const ok = await postJson(`${url}/v1/completions`, { model: "hf-ok", prompt: "Hi", max_tokens: 2, temperature: 0 });
      expect(ok.status).toBe(200);
    } finally {
      await daemon.close();
    }
  }, 60_000);

  it("a generation that hangs is cut off after the stall timeout and the sidecar replaced", async () => {
    const d = await startTestDaemon({ models: [{ id: "hang", path: llm }], stallTimeoutSeconds: 2 }, [], env());
    try {
      await d.client.completions.create({ model: "hang", prompt: "Hi", max_tokens: 2 });
      const [pid] = await pidsMatching("--id hang ");
      const res = await fetch(`${d.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "hang", prompt: "Once", max_tokens: 1500, temperature: 0, stream: true }),
      });
      const reader = res.body!.getReader();
      await reader.read();
      process.kill(pid!, "SIGSTOP"); // wedged: alive, silent
      let text = "";
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      expect(text).toMatch(/stopped producing output for 2 s; its process was replaced/);
      const again = await d.client.completions.create({ model: "hang", prompt: "Hi", max_tokens: 2, temperature: 0 });
      expect(again.choices[0]!.finish_reason).toBe("length");
      expect(await pidsMatching("--id hang ")).not.toContain(pid);
    } finally {
      await d.close();
    }
  }, 60_000);
});
