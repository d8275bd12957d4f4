// One tiny random llama (make_tiny_llm.py, seeded), written three ways from the same weights: safetensors
// (transformers sidecar), GGUF F32 (node-llama-cpp; converted with llama.cpp's own converter) and ONNX with a KV
// cache (onnxruntime-node). Served side by side by one daemon, greedy decoding must give the same token ids on all
// three, and one encoder's three embedding paths must agree.
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
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const ENGINES = { "llm-transformers": "transformers", "llm-llamacpp": "node-llama-cpp", "llm-onnx": "onnxruntime" } as const;
const EMBEDDERS = { "emb-transformers": "transformers", "emb-llamacpp": "node-llama-cpp", "emb-onnx": "onnxruntime" } as const;
const PROMPTS = ["The sky is", "Hello world! How are you", "Once upon a time there was a cat", "Numbers: 0 1 2 3", "Café, naïve, über, 東京"];
const CHATS = ["Hello there", "What colour is the sky?"];
const MAX_TOKENS = 32;
/** A config `chatTemplate` override: replaces each engine's own rendering of the folder's template. */
const TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}: {{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}";

let t: TestDaemon;

interface WithIds {
  prompt_token_ids?: number[];
  choices: { token_ids?: number[]; prompt_token_ids?: number[]; finish_reason: string }[];
}

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
        { id: "tpl-transformers", path: st, chatTemplate: TEMPLATE },
        { id: "tpl-llamacpp", path: gguf, chatTemplate: TEMPLATE },
        { id: "tpl-onnx", path: onnx.dir, chatTemplate: TEMPLATE },
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

async function greedy(model: string, body: object): Promise<{ prompt: number[]; ids: number[] }> {
  const res = await fetch(`${t.url}/v1/${"prompt" in body ? "completions" : "chat/completions"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, ...body, max_tokens: MAX_TOKENS, temperature: 0, return_token_ids: true }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const json = (await res.json()) as WithIds;
  const choice = json.choices[0]!;
  return { prompt: choice.prompt_token_ids ?? json.prompt_token_ids!, ids: choice.token_ids! };
}

describe("cross-backend conformance: the same weights on three engines", () => {
  it("each copy is served by the engine it is meant for", async () => {
    const models = await t.client.models.list();
    const engine = Object.fromEntries(models.data.map((m) => [m.id, (m as unknown as { tabagent: { engine: string } }).tabagent.engine]));
    for (const [id, name] of Object.entries({ ...ENGINES, ...EMBEDDERS })) expect(engine[id], id).toBe(name);
  });

  it(`greedy completions: the same prompt ids and the same ${MAX_TOKENS} answer ids on all three, for ${PROMPTS.length} prompts`, async () => {
    for (const prompt of PROMPTS) {
      const [reference, ...others] = await Promise.all(Object.keys(ENGINES).map((model) => greedy(model, { prompt })));
      expect(reference!.ids.length, prompt).toBeGreaterThan(0);
      others.forEach((other, i) => {
        const name = Object.keys(ENGINES)[i + 1];
        expect(other.prompt, `${name}: prompt ids of ${JSON.stringify(prompt)}`).toEqual(reference!.prompt);
        expect(other.ids, `${name}: answer ids of ${JSON.stringify(prompt)}`).toEqual(reference!.ids);
      });
    }
  }, 120_000);

  it("greedy chat: each engine renders the tokenizer's chat template to the same ids and answers the same", async () => {
    for (const content of CHATS) {
      const body = { messages: [{ role: "user", content }] };
      const [reference, ...others] = await Promise.all(Object.keys(ENGINES).map((model) => greedy(model, body)));
      others.forEach((other, i) => {
        const name = Object.keys(ENGINES)[i + 1];
        expect(other.prompt, `${name}: chat prompt ids`).toEqual(reference!.prompt);
        expect(other.ids, `${name}: chat answer ids`).toEqual(reference!.ids);
      });
    }
  }, 120_000);

  it("a chatTemplate override in the config is what every engine renders, to the same ids", async () => {
    const body = { messages: [{ role: "user", content: "Hello there" }] };
    const own = await greedy("llm-transformers", body);
    const [reference, ...others] = await Promise.all(["tpl-transformers", "tpl-llamacpp", "tpl-onnx"].map((model) => greedy(model, body)));
    expect(reference!.prompt).not.toEqual(own.prompt);
    const answer = await t.client.completions.create({
      model: "llm-transformers",
      prompt: "<|im_start|>user: Hello there<|im_end|><|im_start|>assistant: ",
      max_tokens: 1,
    });
    expect(reference!.prompt).toHaveLength(answer.usage!.prompt_tokens);
    others.forEach((other, i) => {
      expect(other.prompt, `${["llamacpp", "onnx"][i]}: ${JSON.stringify([reference!.prompt, other.prompt])}`).toEqual(reference!.prompt);
      expect(other.ids).toEqual(reference!.ids);
    });
  }, 120_000);

  it("embeddings of one encoder agree across the three engines (cosine ≥ 0.999)", async () => {
    const input = ["A man is eating food.", "The girl is carrying a baby.", "Streaming text arrives token by token."];
    const vectors = await Promise.all(Object.keys(EMBEDDERS).map(async (model) => (await t.client.embeddings.create({ model, input })).data.map((d) => d.embedding)));
    const cosine = (a: number[], b: number[]) => {
      let dot = 0;
      let na = 0;
      let nb = 0;
      a.forEach((x, i) => ((dot += x * b[i]!), (na += x * x), (nb += b[i]! * b[i]!)));
      return dot / Math.sqrt(na * nb);
    };
    for (let e = 1; e < vectors.length; e++) {
      input.forEach((text, i) => expect(cosine(vectors[0]![i]!, vectors[e]![i]!), `${Object.keys(EMBEDDERS)[e]}: ${text}`).toBeGreaterThanOrEqual(0.999));
    }
  }, 120_000);
});
