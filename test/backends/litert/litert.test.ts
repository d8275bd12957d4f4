// The LiteRT engine end to end: the real daemon, the real openai client, LiteRT-LM in its supervised child, on the
// tiny llama converted offline to .litertlm and .task (ensureLitertFixtures), plus bundles that are broken on purpose.
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureLitertFixtures, litertDevVenv, type LitertFixture, type LitertReference } from "../../fixtures/ensureLitertFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { writeZip } from "../../detection/litert/writeZip.js";

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

let fx: LitertFixture;
let ref: LitertReference;
let t: TestDaemon;
let dir: string;

/** The TFLite model inside the .task fixture (its first stored entry, TF_LITE_PREFILL_DECODE). */
async function taskTflite(): Promise<Uint8Array> {
  const zip = new Uint8Array(await readFile(fx.task));
  const v = new DataView(zip.buffer, zip.byteOffset);
  const size = v.getUint32(18, true);
  const start = 30 + v.getUint16(26, true) + v.getUint16(28, true);
  return zip.subarray(start, start + size);
}

beforeAll(async () => {
  fx = await ensureLitertFixtures();
  ref = JSON.parse(await readFile(fx.reference, "utf8")) as LitertReference;
  dir = await mkdtemp(join(tmpdir(), "litert-"));
  const bad = async (name: string, data: Uint8Array) => {
    await mkdir(join(dir, name));
    // Named as a file: a folder holding one ZIP alone is judged by its bytes (a torch pickle archive) by detection.
    const file = join(dir, name, "model" + name.slice(name.lastIndexOf("-")).replace("-", "."));
    await writeFile(file, data);
    return file;
  };
  const litertlm = new Uint8Array(await readFile(fx.litertlm));
  const tflite = await taskTflite();
  // A copy in a folder of its own: the engine must write nothing next to it (the runtime's weight cache included).
  await mkdir(join(dir, "clean"));
  await copyFile(fx.litertlm, join(dir, "clean", "model.litertlm"));
  const models = [
    { id: "lt", path: join(dir, "clean") },
    { id: "lt-task", path: fx.task },
    { id: "truncated", path: await bad("truncated-litertlm", litertlm.subarray(0, Math.floor(litertlm.length * 0.6))) },
    { id: "corrupt-task", path: await bad("corrupt-task", new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...new Uint8Array(300).fill(7)])) },
    {
      id: "traversal",
      path: await bad(
        "traversal-task",
        writeZip([
          { name: "TF_LITE_PREFILL_DECODE", data: tflite },
          { name: "../../escaped.txt", data: new TextEncoder().encode("x") },
        ]),
      ),
    },
    { id: "classifier", path: await bad("classifier-task", writeZip([{ name: "classifier.tflite", data: tflite }])) },
    { id: "bare", path: await bad("bare-tflite", tflite) },
    // Passes detection (an LLM model entry), refused by the engine at load: the 503 quotes the child's reason.
    { id: "no-metadata", path: await bad("nometa-task", writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: tflite }])) },
  ];
  t = await startTestDaemon({ parallel: 1 }, models);
}, 30 * 60_000);

afterAll(async () => {
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const greedy = { temperature: 0 } as const;

describe("litert engine", () => {
  it("lists the bundles with their engine, capabilities, chat template and context", async () => {
    const rows = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; tabagent: Record<string, unknown> }[] };
    const row = rows.data.find((m) => m.id === "lt")!;
    expect(row.tabagent).toMatchObject({ format: "litert", engine: "litert", capabilities: ["chat", "completions"], chat_template: true, context_length: 256 });
  });

  it("chat, greedy, gives transformers' answer to the same weights; usage counts the runtime's tokens", async () => {
    for (const c of ref.cases) {
      const r = await t.client.chat.completions.create({ model: "lt", messages: c.messages as never, max_tokens: ref.max_tokens, ...greedy });
      expect(r.choices[0]!.message.content).toBe(c.text);
      expect(r.usage).toMatchObject({ prompt_tokens: c.prompt_ids.length, completion_tokens: c.ids.length });
      expect(r.choices[0]!.finish_reason).toBe(c.ids.length === ref.max_tokens ? "length" : "stop");
    }
    const rows = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; tabagent: { runtime?: unknown } }[] };
    expect(rows.data.find((m) => m.id === "lt")!.tabagent.runtime).toEqual({ accelerator: "cpu", bundle: "litertlm" });
  });

  it("streams the same text piece by piece, with usage last when asked", async () => {
    const c = ref.cases[0]!;
    const stream = await t.client.chat.completions.create({
      model: "lt",
      messages: c.messages as never,
      max_tokens: ref.max_tokens,
      stream: true,
      stream_options: { include_usage: true },
      ...greedy,
    });
    let text = "";
    let pieces = 0;
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) {
        text += choice.delta.content;
        pieces++;
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(c.text);
    expect(pieces).toBeGreaterThan(5);
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ prompt_tokens: c.prompt_ids.length, completion_tokens: ref.max_tokens });
  });

  it("honours stop sequences and max_tokens", async () => {
    const c = ref.cases[0]!;
    const stop = c.text.slice(8, 12);
    const cut = c.text.indexOf(stop);
    const r = await t.client.chat.completions.create({ model: "lt", messages: c.messages as never, max_tokens: ref.max_tokens, stop: [stop], ...greedy });
    expect(r.choices[0]!.message.content).toBe(c.text.slice(0, cut));
    expect(r.choices[0]!.finish_reason).toBe("stop");
    const short = await t.client.chat.completions.create({ model: "lt", messages: c.messages as never, max_tokens: 3, ...greedy });
    expect(short.choices[0]!.finish_reason).toBe("length");
    expect(short.usage!.completion_tokens).toBe(3);
    expect(c.text.startsWith(short.choices[0]!.message.content!)).toBe(true);
  });

  it("serves /v1/completions on the raw prompt, and a seed repeats a sampled answer", async () => {
    const r = await t.client.completions.create({ model: "lt", prompt: "The sky is", max_tokens: 8, ...greedy });
    expect(r.usage!.completion_tokens).toBe(8);
    expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    const sampled = { model: "lt", prompt: "Once upon a time", max_tokens: 16, temperature: 1, seed: 7 };
    const a = await t.client.completions.create(sampled);
    const b = await t.client.completions.create(sampled);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
  });

  it("refuses what the runtime cannot do with a 400 naming the parameter", async () => {
    const messages = [{ role: "user", content: "Hello" }];
    const cases: [Record<string, unknown>, string][] = [
      [{ logprobs: true }, "logprobs"],
      [{ n: 2 }, "n"],
      [{ tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }] }, "tools"],
      [{ response_format: { type: "json_object" } }, "response_format"],
      [{ presence_penalty: 0.5 }, "presence_penalty"],
    ];
    for (const [extra, param] of cases) {
      const r = await postJson(`${t.url}/v1/chat/completions`, { model: "lt", messages, max_tokens: 4, ...extra });
      expect(r.status, param).toBe(400);
      expect(r.json.error!.param, param).toBe(param);
    }
    const e = await postJson(`${t.url}/v1/embeddings`, { model: "lt", input: "x" });
    expect(e.status).toBe(400);
  });

  it("a client that hangs up mid-stream leaves the model serving", async () => {
    const ac = new AbortController();
    const stream = await t.client.chat.completions.create(
      { model: "lt", messages: [{ role: "user", content: "Hello" }], max_tokens: 200, stream: true, ...greedy },
      { signal: ac.signal },
    );
    // The tiny model may finish its 200 tokens before the abort lands; the engine-level test below sees the cut.
    await (async () => {
      for await (const chunk of stream) if (chunk.choices[0]?.delta.content) ac.abort();
    })().catch(() => undefined);
    const r = await t.client.chat.completions.create({ model: "lt", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, ...greedy });
    expect(r.usage!.completion_tokens).toBe(4);
  });

  it("the engine stops decoding within a few tokens of a cancellation", async () => {
    const python = join(dirname(await litertDevVenv()), basename(await litertDevVenv()), "bin", "python");
    const script = [
      "import sys, threading",
      "sys.path.insert(0, 'native/python')",
      "from tabagent_litert.engine import LiteRtLM",
      "from tabagent_sidecar.protocol import Sampling",
      `e = LiteRtLM(${JSON.stringify(fx.litertlm)}, 'cpu', 1, ${JSON.stringify(join(dir, "cache"))}, None, lambda m: None)`,
      "ids = e.chat_ids([{'role': 'user', 'content': 'Hello'}])",
      "cancel = threading.Event()",
      "g = e.run(ids, Sampling(max_tokens=230, temperature=0), cancel)",
      "first = next(g); cancel.set(); rest = list(g)",
      "print(first[0], len(rest))",
    ].join("\n");
    const { stdout } = await execFileAsync(python, ["-c", script], { cwd: REPO });
    const [kind, after] = stdout.trim().split("\n").at(-1)!.split(" ");
    expect(kind).toBe("text");
    // Cancelled: no finish event, and at most the pieces already queued when the flag was seen.
    expect(Number(after)).toBeLessThan(5);
  });

  it("serves an LLM .task bundle (SentencePiece tokenizer, LlmMetadata) through the same runtime", async () => {
    const r = await t.client.chat.completions.create({ model: "lt-task", messages: [{ role: "user", content: "Hello" }], max_tokens: 6, ...greedy });
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.choices[0]!.finish_reason).toBe(r.usage!.completion_tokens === 6 ? "length" : "stop");
  });

  it("refuses broken and foreign bundles with the reason; nothing is written outside; the daemon keeps serving", async () => {
    const expectations: [string, RegExp][] = [
      ["truncated", /truncat|past the end|outside the file|not valid/i],
      ["corrupt-task", /ZIP|zip|not valid|corrupt/i],
      ["traversal", /outside the archive|path traversal/i],
      ["classifier", /unknown|no LLM/i],
      ["bare", /bare \.tflite|tokenizer/i],
      ["no-metadata", /no METADATA entry/],
    ];
    for (const [model, why] of expectations) {
      const r = await postJson(`${t.url}/v1/completions`, { model, prompt: "x", max_tokens: 2 });
      expect([400, 503], `${model}: ${r.text}`).toContain(r.status);
      expect(r.json.error!.message, model).toMatch(why);
    }
    // The archive's `../../escaped.txt` was never written anywhere, and the clean bundle's folder holds only itself.
    expect(await readdir(dir)).not.toContain("escaped.txt");
    expect(await readdir(join(dir, "clean"))).toEqual(["model.litertlm"]);
    const r = await t.client.chat.completions.create({ model: "lt", messages: [{ role: "user", content: "Hello" }], max_tokens: 2, ...greedy });
    expect(r.usage!.completion_tokens).toBe(2);
  });
});
