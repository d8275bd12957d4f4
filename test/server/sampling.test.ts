// Sampling on the in-process GGUF engine (node-llama-cpp), through the HTTP API: fresh seeds, samplers, and token-id
// embedding inputs, on the generated tiny models.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
}, 120_000);
afterAll(async () => {
  await t?.close();
});

async function complete(body: object): Promise<string> {
  const res = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "the cat", max_tokens: 16, ...body });
  expect(res.status, res.text).toBe(200);
  return (res.json as { choices: { text: string }[] }).choices[0]!.text;
}

async function embed(input: unknown): Promise<{ status: number; vectors: number[][]; json: unknown }> {
  const res = await postJson(`${t.url}/v1/embeddings`, { model: "tiny-embed", input });
  const data = (res.json as { data?: { embedding: number[] }[] }).data ?? [];
  return { status: res.status, vectors: data.map((d) => d.embedding), json: res.json };
}

describe("seeds (node-llama-cpp)", () => {
  it("requests without a seed at temperature 1.5 give different answers", async () => {
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await complete({ temperature: 1.5 }));
    expect(new Set(answers).size).toBeGreaterThan(1);
  });

  it("the same seed twice gives the same answer", async () => {
    const a = await complete({ temperature: 1.5, seed: 1234 });
    const b = await complete({ temperature: 1.5, seed: 1234 });
    expect(b).toBe(a);
  });

  it("negative and large seeds reproduce too", async () => {
    for (const seed of [-5, 2 ** 40 + 3]) expect(await complete({ temperature: 1.5, seed })).toBe(await complete({ temperature: 1.5, seed }));
  });
});

describe("samplers (node-llama-cpp)", () => {
  it("top_k 1 at temperature 1.5 equals greedy", async () => {
    const greedy = await complete({ temperature: 0 });
    for (let i = 0; i < 3; i++) expect(await complete({ temperature: 1.5, top_k: 1 })).toBe(greedy);
  });

  it("min_p 1 at temperature 1.5 equals greedy (only the most likely token is left)", async () => {
    expect(await complete({ temperature: 1.5, min_p: 1 })).toBe(await complete({ temperature: 0 }));
  });

  it("repeat_penalty changes the greedy answer; repetition_penalty is the same parameter", async () => {
    const plain = await complete({ temperature: 0, max_tokens: 32 });
    const penalized = await complete({ temperature: 0, max_tokens: 32, repeat_penalty: 5 });
    expect(penalized).not.toBe(plain);
    expect(await complete({ temperature: 0, max_tokens: 32, repetition_penalty: 5 })).toBe(penalized);
  });

  it("an extension nothing here implements is a 400 naming it", async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [{ role: "user", content: "hi" }], mirostat: 2 });
    expect(res.status).toBe(400);
    expect((res.json as { error: { param: string; code: string } }).error).toMatchObject({ param: "mirostat", code: "unsupported_parameter" });
  });
});

describe("token-id embedding inputs (node-llama-cpp)", () => {
  it("ids embed like the text they came from; flat and nested forms", async () => {
    const { getLlama } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false });
    const model = await llama.loadModel({ modelPath: t.fixtures.embeddingModelPath });
    const ids = [...model.tokenize("hello world")].map(Number);
    await model.dispose();
    const text = await embed("hello world");
    const flat = await embed(ids);
    const nested = await embed([ids, ids.slice(0, 1)]);
    expect(flat.status).toBe(200);
    expect(nested.status).toBe(200);
    expect(nested.vectors).toHaveLength(2);
    for (const v of [flat.vectors[0]!, nested.vectors[0]!]) {
      v.forEach((x, i) => expect(x).toBeCloseTo(text.vectors[0]![i]!, 5));
    }
  });

  it("an id outside the vocabulary is a 400 naming it", async () => {
    const nested = await embed([
      [1, 2],
      [3, 1_000_000],
    ]);
    expect(nested.status).toBe(400);
    expect((nested.json as { error: { param: string } }).error.param).toBe("input[1][1]");
    const flat = await embed([1, 1_000_000]);
    expect(flat.status).toBe(400);
    expect((flat.json as { error: { param: string } }).error.param).toBe("input[1]");
  });
});
