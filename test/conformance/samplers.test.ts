// top_k, repeat_penalty and token-id embedding inputs on the three engines that run the same tiny weights
// (transformers sidecar, node-llama-cpp, ONNX Runtime): see crossBackend.test.ts for the fixtures.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ensureMiniLmGguf,
  ensureMiniLmOnnx,
  ensureTinyLlm,
  ensureTinyLlmGguf,
  ensureTinyLlmOnnx,
  miniLmSource,
  pythonExecutable,
} from "../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const LLMS = ["llm-transformers", "llm-llamacpp", "llm-onnx"];
const EMBEDDERS = ["emb-transformers", "emb-llamacpp", "emb-onnx"];
const PROMPT = "Once upon a time there was a cat";

let t: TestDaemon;

beforeAll(async () => {
  const [st, gguf, onnx, minilm, minilmGguf, minilmOnnx, python] = await Promise.all([
    ensureTinyLlm(),
    ensureTinyLlmGguf(),
    ensureTinyLlmOnnx(),
    miniLmSource(),
    ensureMiniLmGguf(),
    ensureMiniLmOnnx(),
    pythonExecutable(),
  ]);
  t = await startTestDaemon(
    {
      contextSize: 2048,
      models: [
        { id: "llm-transformers", path: st },
        { id: "llm-llamacpp", path: gguf },
        { id: "llm-onnx", path: onnx.dir },
        { id: "emb-transformers", path: minilm },
        { id: "emb-llamacpp", path: minilmGguf },
        { id: "emb-onnx", path: minilmOnnx.dir },
      ],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python },
  );
}, 300_000);
afterAll(async () => {
  await t?.close();
});

async function ids(model: string, body: object): Promise<number[]> {
  const res = await postJson(`${t.url}/v1/completions`, { model, prompt: PROMPT, max_tokens: 24, return_token_ids: true, ...body });
  expect(res.status, res.text).toBe(200);
  return (res.json as { choices: { token_ids: number[] }[] }).choices[0]!.token_ids;
}

describe.each(LLMS)("samplers on %s", (model) => {
  it("top_k 1 at temperature 1.5 equals greedy", async () => {
    const greedy = await ids(model, { temperature: 0 });
    for (const seed of [1, 2, 3]) expect(await ids(model, { temperature: 1.5, top_k: 1, seed })).toEqual(greedy);
  });

  it("the same seed twice gives the same tokens; no seed varies", async () => {
    expect(await ids(model, { temperature: 1.5, seed: 77 })).toEqual(await ids(model, { temperature: 1.5, seed: 77 }));
    const free = await Promise.all(Array.from({ length: 5 }, () => ids(model, { temperature: 1.5 })));
    expect(new Set(free.map((x) => x.join(","))).size).toBeGreaterThan(1);
  });

  it("repeat_penalty changes the greedy answer", async () => {
    expect(await ids(model, { temperature: 0, repeat_penalty: 3 })).not.toEqual(await ids(model, { temperature: 0 }));
  });
});

describe.each(EMBEDDERS)("token-id embedding inputs on %s", (model) => {
  async function embed(input: unknown) {
    return postJson(`${t.url}/v1/embeddings`, { model, input });
  }

  it("ids embed like the text they came from", async () => {
    // The tokenizer's ids for the text, special tokens included ([CLS] ... [SEP]), from the sidecar's reference.
    const python = await pythonExecutable();
    const { execFileSync } = await import("node:child_process");
    const source = await miniLmSource();
    const out = execFileSync(
      python,
      [
        "-c",
        `from transformers import AutoTokenizer; import json; print(json.dumps(AutoTokenizer.from_pretrained(${JSON.stringify(source)})("the cat sat")["input_ids"]))`,
      ],
      {
        env: { ...process.env, HF_HUB_OFFLINE: "1" },
      },
    );
    const tokenIds = JSON.parse(String(out)) as number[];
    const text = await embed("the cat sat");
    const fromIds = await embed([tokenIds, tokenIds]);
    expect(fromIds.status, fromIds.text).toBe(200);
    const a = (text.json as { data: { embedding: number[] }[] }).data[0]!.embedding;
    for (const d of (fromIds.json as { data: { embedding: number[] }[] }).data) d.embedding.forEach((x, i) => expect(x).toBeCloseTo(a[i]!, 4));
  });

  it("an id outside the vocabulary is a 400 naming it", async () => {
    const res = await embed([
      [101, 102],
      [101, 10_000_000],
    ]);
    expect(res.status).toBe(400);
    expect((res.json as { error: { param: string } }).error.param).toBe("input[1][1]");
  });
});
