import { execa, type ResultPromise } from "execa";
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { readGgufHeader } from "../../../src/detection/gguf/readGgufHeader.js";
import { findFreePort } from "../../../src/supervisor/findFreePort.js";
import { ensureBitnetFixtures, type BitnetFixtures } from "../../fixtures/ensureBitnetFixtures.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { llamaServerBinary } from "../../helpers/llamaServerBinary.js";
import { readSse } from "../../helpers/readSse.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

// Microsoft's BitNet build of llama-server on a real I2_S model (made by the fork's own generator and quantizer),
// under the daemon's supervisor, compared token for token with the same binary used directly.

let fx: BitnetFixtures;
let dir: string;
let t: TestDaemon;
let standard: string;
const env = () => ({ ...process.env, TABAGENT_LLAMA_SERVER: standard, TABAGENT_LLAMA_SERVER_BITNET: fx.llamaServerBitnet });

const COMPLETION_PROMPTS = ["The cat", "Hello, how are you", "One, two, three, four"];
const MAX_TOKENS = 12;

beforeAll(async () => {
  fx = await ensureBitnetFixtures();
  standard = await llamaServerBinary();
  dir = await mkdtemp(join(tmpdir(), "bitnet-"));
  // A copy whose header claims a third layer: every tensor it has is whole (the daemon's header check passes), but
  // the fork finds blk.2's tensors missing when it loads the model.
  const broken = join(dir, "three-layers-i2_s.gguf");
  await copyFile(fx.i2sPath, broken);
  await setU32(broken, "bitnet.block_count", 3);
  // The same matrices marked TL2: this build's TL2 kernels were generated for bitnet_b1_58-large's shapes, not these.
  const tl2 = join(dir, "tiny-tl2.gguf");
  await copyFile(fx.i2sPath, tl2);
  await retype(tl2, 36, 39); // I2_S -> TL2
  await setU32(tl2, "general.file_type", 42); // MOSTLY_TL2
  t = await startTestDaemon(
    {
      contextSize: 1024,
      parallel: 2,
      models: [
        { id: "bitnet", path: fx.i2sPath },
        { id: "bitnet-f32", path: fx.f32Path, engine: "llama-server" },
        { id: "tiny-chat", path: (await ensureFixtures()).chatModelPath },
        { id: "bitnet-broken", path: broken },
        { id: "bitnet-tl2", path: tl2 },
        ...(fx.tl2Path ? [{ id: "bitnet-tl2-real", path: fx.tl2Path }] : []),
      ],
    },
    [],
    env(),
  );
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The daemon's streamed pieces (one per generated token) and usage. */
async function daemonPieces(kind: "chat" | "completion", input: string, model = "bitnet") {
  const pieces: string[] = [];
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  let finish: string | null | undefined;
  if (kind === "completion") {
    const stream = await t.client.completions.create({
      model,
      prompt: input,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const c of stream) {
      if (c.choices[0]?.text) pieces.push(c.choices[0].text);
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage ?? usage;
    }
  } else {
    const stream = await t.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: input }],
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const c of stream) {
      if (c.choices[0]?.delta.content) pieces.push(c.choices[0].delta.content);
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage ?? usage;
    }
  }
  return { pieces, usage: usage!, finish };
}

describe("BitNet llama-server engine (real BitNet build, real I2_S model)", () => {
  it("detection picks the BitNet engine for I2_S and says why; standard GGUFs beside it stay on the standard engines", async () => {
    const models = (await (await fetch(`${t.url}/v1/models`)).json()) as {
      data: { id: string; tabagent: { engine: string; engine_reason: string; quantization: string } }[];
    };
    const byId = new Map(models.data.map((m) => [m.id, m.tabagent]));
    expect(byId.get("bitnet")).toMatchObject({ engine: "llama-server-bitnet", quantization: "I2_S" });
    expect(byId.get("bitnet")!.engine_reason).toMatch(/type I2_S .*only the BitNet build of llama\.cpp runs/);
    expect(byId.get("tiny-chat")!.engine).not.toBe("llama-server-bitnet");
    // Pinned to the standard engine: the standard build runs the F32 model (architecture bitnet) on its own child.
    expect(byId.get("bitnet-f32")!.engine).toBe("llama-server");
    const f32 = await t.client.completions.create({ model: "bitnet-f32", prompt: "The cat", max_tokens: 4, temperature: 0 });
    expect(f32.usage!.completion_tokens).toBe(4);
  });

  it("chat and completions, streamed and not, through the openai client", async () => {
    const chat = await t.client.chat.completions.create({ model: "bitnet", messages: [{ role: "user", content: "Hello" }], max_tokens: MAX_TOKENS, temperature: 0 });
    expect(chat.model).toBe("bitnet");
    expect(chat.choices[0]!.finish_reason).toBe("length");
    expect(chat.usage!.completion_tokens).toBe(MAX_TOKENS);
    const text = chat.choices[0]!.message.content!;
    expect(text.length).toBeGreaterThan(0);
    const streamed = await daemonPieces("chat", "Hello");
    expect(streamed.pieces.join("")).toBe(text);
    expect(streamed.usage).toMatchObject({ prompt_tokens: chat.usage!.prompt_tokens, completion_tokens: MAX_TOKENS });

    const c = await t.client.completions.create({ model: "bitnet", prompt: "The cat", max_tokens: MAX_TOKENS, temperature: 0 });
    expect(c.choices[0]!.finish_reason).toBe("length");
    expect(c.usage).toMatchObject({ completion_tokens: MAX_TOKENS });
    const cs = await daemonPieces("completion", "The cat");
    expect(cs.pieces.join("")).toBe(c.choices[0]!.text);
    expect(cs.finish).toBe("length");
    // Stop strings and n > 1 go through too (each choice its own request to the child).
    const two = await t.client.completions.create({ model: "bitnet", prompt: "The cat", max_tokens: 4, temperature: 0, n: 2 });
    expect(two.choices.map((x) => x.text)).toEqual([two.choices[0]!.text, two.choices[0]!.text]);
  });

  it("the daemon's greedy tokens equal the BitNet llama-server's own, prompt tokens included (I2_S)", async () => {
    await expectSameTokens("bitnet", fx.i2sPath);
  });

  // TL2 kernels exist on x86_64 only; there the default build has them for the fixture's shapes.
  it.runIf(process.arch === "x64")("the same for a TL2 model (the generator's x86 lookup-table packing) on the TL2 kernels", async () => {
    expect(fx.tl2Path).not.toBeNull();
    const models = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; tabagent: { engine: string; quantization: string } }[] };
    // (Its quantization label is not checked: the generator writes general.file_type 39, a ggml type id, where
    // llama.cpp expects the file type 42; detection names it from that field.)
    expect(models.data.find((m) => m.id === "bitnet-tl2-real")!.tabagent.engine).toBe("llama-server-bitnet");
    await expectSameTokens("bitnet-tl2-real", fx.tl2Path!);
  });

  it("threads and -ngl reach the BitNet child as for llama-server; it listens on 127.0.0.1 and needs its key", async () => {
    await t.client.completions.create({ model: "bitnet", prompt: "x", max_tokens: 1 });
    const pids = t.daemon.processes.pids();
    const argvs = await Promise.all(pids.map(async (pid) => (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")));
    const argv = argvs.find((a) => a.includes(fx.i2sPath) && a[0] === fx.llamaServerBitnet)!;
    expect(argv).toBeDefined();
    expect(argv[argv.indexOf("--threads") + 1]).toBe("1");
    expect(argv).not.toContain("--jinja");
    expect(argv[argv.indexOf("--host") + 1]).toBe("127.0.0.1");
    const port = argv[argv.indexOf("--port") + 1];
    const noKey = await postJson(`http://127.0.0.1:${port}/completion`, { prompt: "x", n_predict: 1 });
    expect(noKey.status).toBe(401);
  });

  it("an I2_S file the fork cannot load → 503 model_load_failed with the fork's reason; the daemon keeps serving", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: "bitnet-broken", prompt: "x", max_tokens: 2 });
    expect(r.status).toBe(503);
    expect(r.json.error).toMatchObject({ code: "model_load_failed" });
    expect(r.json.error!.message).toBe(
      "Model 'bitnet-broken' failed to load: BitNet's llama-server cannot load it: check_tensor_dims: tensor 'blk.2.attn_norm.weight' not found",
    );
    const ok = await t.client.completions.create({ model: "bitnet", prompt: "The cat", max_tokens: 2, temperature: 0 });
    expect(ok.usage!.completion_tokens).toBe(2);
  });

  it("a TL2 model whose shapes this build's kernels lack → 503 model_load_failed naming them, before any start", async () => {
    const before = t.daemon.processes.pids().length;
    const r = await postJson(`${t.url}/v1/completions`, { model: "bitnet-tl2", prompt: "x", max_tokens: 2 });
    expect(r.status).toBe(503);
    expect(r.json.error).toMatchObject({ code: "model_load_failed" });
    expect(r.json.error!.message).toMatch(
      /BitNet's llama-server cannot run it: its TL2 matrix blk\.0\.\S+ is \d+×\d+ \(M×K\), and this build's TL2 kernels cover only 1536×4096, 1536×1536, 4096×1536; rebuild with native\/build-llama-server\.sh --variant bitnet --bitnet-kernels/,
    );
    expect(t.daemon.processes.pids().length).toBe(before);
  });

  it("SIGKILL of the BitNet child mid-stream: one SSE error event, then a restart serves the next request", async () => {
    await t.client.completions.create({ model: "bitnet", prompt: "x", max_tokens: 1 });
    const pids: number[] = [];
    for (const pid of t.daemon.processes.pids()) {
      if ((await readFile(`/proc/${pid}/cmdline`, "utf8")).includes(fx.i2sPath)) pids.push(pid);
    }
    expect(pids).toHaveLength(1);
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "bitnet", messages: [{ role: "user", content: "Hello" }], max_tokens: 1000, temperature: 0, stream: true }),
    });
    const text = await readSse(res, () => pids.forEach((pid) => process.kill(pid, "SIGKILL")));
    const last = JSON.parse(text.split("\n\n").filter(Boolean).at(-1)!.slice(6));
    expect(last.error).toMatchObject({ type: "server_error" });
    const again = await t.client.chat.completions.create({ model: "bitnet", messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0 });
    expect(again.choices[0]!.finish_reason).toBe("length");
  });

  it("an I2_S model with no BitNet binary anywhere → 503 engine_unavailable saying how to build it", async () => {
    const d = await startTestDaemon({ models: [{ id: "bitnet", path: fx.i2sPath }] }, [], {
      PATH: "/usr/bin:/bin",
      HOME: dir,
      TABAGENT_CACHE_DIR: join(dir, "empty-cache"),
    });
    try {
      const r = await postJson(`${d.url}/v1/completions`, { model: "bitnet", prompt: "x" });
      expect(r.status).toBe(503);
      expect(r.json.error).toMatchObject({ code: "engine_unavailable" });
      expect(r.json.error!.message).toMatch(/llama-server-bitnet.*native\/build-llama-server\.sh --variant bitnet.*TABAGENT_LLAMA_SERVER_BITNET/s);
    } finally {
      await d.close();
    }
  });
});

/** Changes the ggml type of every tensor of type `from` in the header (same offsets; the new sizes fit). */
async function retype(path: string, from: number, to: number): Promise<void> {
  const bytes = await readFile(path);
  const src = await openFileByteSource(path);
  const { tensors } = await readGgufHeader(src).finally(() => src.close());
  for (const tensor of tensors.filter((x) => x.type === from)) {
    const name = Buffer.from(tensor.name, "utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(name.length));
    const at = bytes.indexOf(Buffer.concat([prefix, name]));
    const typeAt = at + 8 + name.length + 4 + 8 * tensor.dims.length;
    if (at < 0 || bytes.readUInt32LE(typeAt) !== from) throw new Error(`cannot find tensor ${tensor.name} in ${path}`);
    bytes.writeUInt32LE(to, typeAt);
  }
  await writeFile(path, bytes);
}

/** Overwrites a u32 metadata value in place (same size: every offset stays valid). */
async function setU32(path: string, key: string, value: number): Promise<void> {
  const bytes = await readFile(path);
  const at = bytes.indexOf(Buffer.from(key, "utf8"));
  if (at < 0 || bytes.readUInt32LE(at + key.length) !== 4) throw new Error(`no u32 ${key} in ${path}`);
  const handle = await open(path, "r+");
  const v = Buffer.alloc(4);
  v.writeUInt32LE(value);
  await handle.write(v, 0, 4, at + key.length + 4);
  await handle.close();
}

/** Starts the fork directly on `path` and compares its greedy pieces and token counts with the daemon's `model`. */
async function expectSameTokens(model: string, path: string): Promise<void> {
  const port = await findFreePort();
  const child = execa(fx.llamaServerBitnet, ["--model", path, "--host", "127.0.0.1", "--port", String(port), "--ctx-size", "2048", "--parallel", "2", "--threads", "1"], {
    reject: false,
    stdin: "ignore",
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitHealthy(base, child);
    for (const prompt of COMPLETION_PROMPTS) {
      const ids = ((await postJson(`${base}/tokenize`, { content: prompt, add_special: true })).json as { tokens: number[] }).tokens;
      const direct = await directPieces(`${base}/completion`, { prompt, n_predict: MAX_TOKENS, temperature: 0 });
      const byIds = await directPieces(`${base}/completion`, { prompt: ids, n_predict: MAX_TOKENS, temperature: 0 });
      const daemon = await daemonPieces("completion", prompt, model);
      expect(direct.final.tokens_evaluated).toBe(ids.length);
      expect(daemon.usage.prompt_tokens).toBe(ids.length);
      expect(byIds.pieces).toEqual(direct.pieces); // the text prompt is those ids
      expect(daemon.pieces).toEqual(direct.pieces);
      expect(daemon.usage.completion_tokens).toBe(direct.final.tokens_predicted);
    }
    const chatDirect = await directChatPieces(`${base}/v1/chat/completions`, "Hello");
    const chatDaemon = await daemonPieces("chat", "Hello", model);
    expect(chatDaemon.pieces).toEqual(chatDirect.pieces);
    expect(chatDaemon.usage).toMatchObject(chatDirect.usage);
  } finally {
    child.kill("SIGTERM");
    await child;
  }
}

async function waitHealthy(base: string, child: ResultPromise): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the BitNet llama-server exited (${child.exitCode})`);
    const ok = await fetch(`${base}/health`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the BitNet llama-server did not become healthy");
}

/** The fork's native /completion, streamed: one `content` piece per token, then the totals. */
async function directPieces(url: string, body: Record<string, unknown>) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  const events = (await res.text())
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => JSON.parse(e.slice(6)) as { content: string; stop: boolean; tokens_evaluated?: number; tokens_predicted?: number });
  return { pieces: events.map((e) => e.content).filter((c) => c !== ""), final: events.at(-1)! };
}

async function directChatPieces(url: string, content: string) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
  });
  const events = (await res.text())
    .split("\n\n")
    .filter((e) => e.startsWith("data: ") && !e.startsWith("data: [DONE]"))
    .map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string } }[]; usage?: { prompt_tokens: number; completion_tokens: number } });
  return {
    pieces: events.map((e) => e.choices[0]?.delta.content ?? "").filter((c) => c !== ""),
    usage: { prompt_tokens: events.at(-1)!.usage!.prompt_tokens, completion_tokens: events.at(-1)!.usage!.completion_tokens },
  };
}
