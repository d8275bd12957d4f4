// The ONNX engine through the real daemon and the real `openai` client: exported models made by the Python fixture
// scripts (cached), compared with what transformers and sentence-transformers computed for the same inputs.
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureMiniLmOnnx, ensureTinyLlmOnnx, type OnnxLlmFixture, type ReferenceIds } from "../../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

let t: TestDaemon;
let llm: OnnxLlmFixture;
let reference: ReferenceIds;
let embedReference: { texts: string[]; vectors: number[][]; tokens: number[] };
let scratch: string;

/** A copy of the tiny ONNX model whose graph file is replaced or whose external data is rearranged. */
async function variant(name: string, edit: (dir: string) => Promise<void>, from = llm.dir): Promise<string> {
  const dir = join(scratch, name, "model");
  await mkdir(join(scratch, name), { recursive: true });
  await cp(from, dir, { recursive: true });
  await edit(dir);
  return dir;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

beforeAll(async () => {
  llm = await ensureTinyLlmOnnx();
  const external = await ensureTinyLlmOnnx({ externalData: true });
  const minilm = await ensureMiniLmOnnx();
  reference = JSON.parse(await readFile(llm.reference, "utf8")) as ReferenceIds;
  embedReference = JSON.parse(await readFile(minilm.reference, "utf8")) as typeof embedReference;
  scratch = await mkdtemp(join(tmpdir(), "tabagent-onnx-"));

  const garbage = await variant("garbage", (dir) => writeFile(join(dir, "model.onnx"), Buffer.from("this is not an ONNX graph at all, just text")));
  const truncated = await variant("truncated", async (dir) => truncate(join(dir, "model.onnx"), 300_000));
  // `..` in the location: the data sits right outside the folder, so ONNX Runtime itself would read it.
  const dotdot = await variant(
    "dotdot",
    async (dir) => {
      const graph = await readFile(join(dir, "model.onnx"));
      const from = Buffer.from("model.onnx_data");
      const to = Buffer.from("../outside.data"); // same length: the protobuf stays valid
      let at = graph.indexOf(from);
      expect(at).toBeGreaterThan(0);
      while (at >= 0) {
        to.copy(graph, at);
        at = graph.indexOf(from, at + 1);
      }
      await writeFile(join(dir, "model.onnx"), graph);
      await rename(join(dir, "model.onnx_data"), join(dir, "..", "outside.data"));
    },
    external.dir,
  );
  // A symlink whose target is outside the folder.
  const linked = await variant(
    "linked",
    async (dir) => {
      await rename(join(dir, "model.onnx_data"), join(dir, "..", "elsewhere.data"));
      await symlink(join(dir, "..", "elsewhere.data"), join(dir, "model.onnx_data"));
    },
    external.dir,
  );

  t = await startTestDaemon({ parallel: 4 }, [
    { id: "onnx-llm", path: llm.dir },
    { id: "onnx-llm-external", path: external.dir },
    { id: "onnx-embed", path: minilm.dir },
    { id: "onnx-garbage", path: garbage },
    { id: "onnx-truncated", path: truncated },
    { id: "onnx-dotdot", path: dotdot },
    { id: "onnx-linked", path: linked },
  ]);
}, 600_000);

afterAll(async () => {
  await t?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("ONNX backend through the daemon", () => {
  it("routes ONNX folders to onnxruntime and shows the execution provider once loaded", async () => {
    const before = await t.client.models.retrieve("onnx-llm");
    expect((before as unknown as { tabagent: { engine: string; task: string } }).tabagent).toMatchObject({ engine: "onnxruntime", task: "chat" });
    await t.client.completions.create({ model: "onnx-llm", prompt: "Hi", max_tokens: 1, temperature: 0 });
    const list = await t.client.models.list();
    const model = list.data.find((m) => m.id === "onnx-llm") as unknown as { tabagent: { runtime?: { execution_provider: string }; loaded: boolean } };
    expect(model.tabagent.loaded).toBe(true);
    expect(model.tabagent.runtime?.execution_provider).toBe("cpu");
    const embed = (await t.client.models.retrieve("onnx-embed")) as unknown as { tabagent: { engine: string; task: string } };
    expect(embed.tabagent).toMatchObject({ engine: "onnxruntime", task: "embeddings" });
  });

  it("greedy completions give transformers' continuation, text and token count, streamed and not", async () => {
    for (const c of reference.completions) {
      const res = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: reference.max_tokens, temperature: 0 });
      expect(res.choices[0]!.text, c.prompt).toBe(c.text);
      expect(res.choices[0]!.finish_reason).toBe(c.finish_reason);
      expect(res.usage).toMatchObject({ prompt_tokens: c.prompt_ids.length, completion_tokens: c.completion_tokens });

      const stream = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: reference.max_tokens, temperature: 0, stream: true });
      let text = "";
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(text).toBe(c.text);
      expect(finish).toBe(c.finish_reason);
    }
  });

  it("chat renders the model's template: transformers' prompt and continuation, streamed and not, with usage", async () => {
    for (const c of reference.chats) {
      const res = await t.client.chat.completions.create({ model: "onnx-llm", messages: c.messages, max_tokens: reference.max_tokens, temperature: 0 });
      expect(res.choices[0]!.message.content).toBe(c.text);
      expect(res.choices[0]!.finish_reason).toBe(c.finish_reason);
      expect(res.usage).toMatchObject({ prompt_tokens: c.prompt_ids.length, completion_tokens: c.completion_tokens });

      const stream = await t.client.chat.completions.create({
        model: "onnx-llm",
        messages: c.messages,
        max_tokens: reference.max_tokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let pieces = 0;
      let usage: unknown = null;
      for await (const chunk of stream) {
        const piece = chunk.choices[0]?.delta.content ?? "";
        if (piece) pieces++;
        text += piece;
        if (chunk.usage) usage = chunk.usage;
      }
      expect(text).toBe(c.text);
      expect(pieces).toBeGreaterThan(1);
      expect(usage).toMatchObject({ prompt_tokens: c.prompt_ids.length, completion_tokens: c.completion_tokens });
    }
  });

  it("return_token_ids gives the engine's ids: transformers' prompt ids and greedy ids", async () => {
    for (const c of reference.completions.slice(0, 3)) {
      const res = await postJson(`${t.url}/v1/completions`, {
        model: "onnx-llm",
        prompt: c.prompt,
        max_tokens: reference.max_tokens,
        temperature: 0,
        return_token_ids: true,
      });
      expect(res.status).toBe(200);
      const choice = (res.json as unknown as { choices: { token_ids: number[]; prompt_token_ids?: number[] }[]; prompt_token_ids?: number[] }).choices[0]!;
      expect(choice.token_ids).toEqual(c.ids.slice(0, c.completion_tokens));
      expect(choice.prompt_token_ids ?? (res.json as unknown as { prompt_token_ids?: number[] }).prompt_token_ids).toEqual(c.prompt_ids);
    }
  });

  it("max_tokens ends with length; a stop sequence ends with stop, before the sequence", async () => {
    const c = reference.completions.find((x) => x.completion_tokens >= 12 && x.text.length >= 12)!;
    const short = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: 3, temperature: 0 });
    expect(short.choices[0]!.finish_reason).toBe("length");
    expect(short.usage?.completion_tokens).toBe(3);
    expect(c.text.startsWith(short.choices[0]!.text)).toBe(true);

    const stop = c.text.slice(6, 9);
    const cut = c.text.indexOf(stop);
    const stopped = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: reference.max_tokens, temperature: 0, stop: [stop] });
    expect(stopped.choices[0]!.text).toBe(c.text.slice(0, cut));
    expect(stopped.choices[0]!.finish_reason).toBe("stop");
  });

  it("sampling with a seed repeats; temperature and top_p change the choice of tokens", async () => {
    const ask = (seed: number) => t.client.completions.create({ model: "onnx-llm", prompt: "Once upon a time", max_tokens: 24, temperature: 1.5, top_p: 0.95, seed });
    const a = await ask(7);
    const b = await ask(7);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    const others = await Promise.all([1, 2, 3].map((s) => ask(s)));
    const greedy = reference.completions.find((x) => x.prompt === "Once upon a time")!.text;
    expect(new Set([a, ...others].map((r) => r.choices[0]!.text)).size).toBeGreaterThan(1);
    expect([a, ...others].some((r) => r.choices[0]!.text !== greedy)).toBe(true);
  });

  it("four concurrent streams each get what the same request gets alone", async () => {
    const requests = [11, 12, 13, 14].map((seed, i) => ({ prompt: reference.completions[i]!.prompt, seed }));
    const one = async (r: { prompt: string; seed: number }) => {
      const stream = await t.client.completions.create({ model: "onnx-llm", prompt: r.prompt, max_tokens: 40, temperature: 1, seed: r.seed, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
      return text;
    };
    const alone: string[] = [];
    for (const r of requests) alone.push(await one(r));
    const together = await Promise.all(requests.map(one));
    expect(together).toEqual(alone);
  });

  it("aborting a stream frees its slot, and the next request is unaffected", async () => {
    const c = reference.completions[0]!;
    const full = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: 480, temperature: 0 });
    expect(full.usage!.completion_tokens).toBeGreaterThan(200); // long enough to be cut
    const controller = new AbortController();
    const stream = await t.client.completions.create(
      { model: "onnx-llm", prompt: c.prompt, max_tokens: 480, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream) {
        if (++chunks === 3) controller.abort();
      }
    } catch {
      // the SDK ends the iteration or throws an abort error: either way the stream is cut
    }
    expect(chunks).toBeLessThan(full.usage!.completion_tokens);
    const deadline = Date.now() + 5_000;
    while (t.daemon.router.modelStatus("onnx-llm")!.running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(t.daemon.router.modelStatus("onnx-llm")!.running).toBe(0);
    const after = await t.client.completions.create({ model: "onnx-llm", prompt: c.prompt, max_tokens: reference.max_tokens, temperature: 0 });
    expect(after.choices[0]!.text).toBe(c.text);
  });

  it("embeddings: pooled and normalised as sentence-transformers does (cosine >= 0.9999), with usage", async () => {
    const res = await t.client.embeddings.create({ model: "onnx-embed", input: embedReference.texts });
    expect(res.data).toHaveLength(embedReference.texts.length);
    res.data.forEach((d, i) => {
      expect(d.embedding).toHaveLength(384);
      expect(cosine(d.embedding, embedReference.vectors[i]!)).toBeGreaterThanOrEqual(0.9999);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      expect(norm).toBeCloseTo(1, 4);
    });
    expect(res.usage.prompt_tokens).toBe(embedReference.tokens.reduce((a, b) => a + b, 0));
    // One input alone gives the same vector as inside a padded batch.
    const alone = await t.client.embeddings.create({ model: "onnx-embed", input: embedReference.texts[4]! });
    expect(cosine(alone.data[0]!.embedding, res.data[4]!.embedding)).toBeGreaterThan(0.99999);
  });

  it("a model whose weights are external data loads when the data is inside the folder", async () => {
    const c = reference.completions[1]!;
    const res = await t.client.completions.create({ model: "onnx-llm-external", prompt: c.prompt, max_tokens: reference.max_tokens, temperature: 0 });
    expect(res.choices[0]!.text).toBe(c.text);
  });

  it("malformed or truncated graphs are refused by detection (400 model_not_servable, naming why), and the daemon keeps serving", async () => {
    for (const model of ["onnx-garbage", "onnx-truncated"]) {
      const res = await postJson(`${t.url}/v1/completions`, { model, prompt: "Hello", max_tokens: 2 });
      expect(res.status, model).toBe(400);
      expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: "model_not_servable", param: "model" });
      expect(res.json.error!.message).toContain(model);
      expect(res.json.error!.message).toMatch(/cannot be served: .+/);
    }
    const ok = await t.client.completions.create({ model: "onnx-llm", prompt: "Hello world", max_tokens: 4, temperature: 0 });
    expect(ok.choices[0]!.text.length).toBeGreaterThan(0);
  });

  it("external data outside the model folder is refused: '..' in the location, or a symlink that leads out", async () => {
    const dotdot = await postJson(`${t.url}/v1/completions`, { model: "onnx-dotdot", prompt: "Hello", max_tokens: 2 });
    expect(dotdot.status).toBe(503);
    expect(dotdot.json.error!.message).toMatch(/\.\.\/outside\.data.*refused.*'\.\.' leaves the model folder/);
    const linked = await postJson(`${t.url}/v1/completions`, { model: "onnx-linked", prompt: "Hello", max_tokens: 2 });
    expect(linked.status).toBe(503);
    expect(linked.json.error!.message).toMatch(/model\.onnx_data.*refused.*outside the model folder/);
    const health = await fetch(`${t.url}/health`);
    expect(health.status).toBe(200);
  });

  it("chat on the embedding model and embeddings on the LLM are refused by task", async () => {
    const a = await postJson(`${t.url}/v1/chat/completions`, { model: "onnx-embed", messages: [{ role: "user", content: "hi" }] });
    expect(a.status).toBe(400);
    const b = await postJson(`${t.url}/v1/embeddings`, { model: "onnx-llm", input: "hi" });
    expect(b.status).toBe(400);
  });
});
