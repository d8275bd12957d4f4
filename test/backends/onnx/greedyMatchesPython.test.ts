// The ONNX engine's own pieces against Python: tokenizer.json through @huggingface/tokenizers, the chat template
// through @huggingface/jinja, and greedy decoding with the KV cache against transformers' full forward passes.
import { readFile } from "node:fs/promises";
import { pino } from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate } from "../../../src/backends/generation/ChatTemplate.js";
import { createOnnxSession, type OnnxSession } from "../../../src/backends/onnx/createOnnxSession.js";
import { describeDecoderGraph } from "../../../src/backends/onnx/describeDecoderGraph.js";
import { OnnxDecoder } from "../../../src/backends/onnx/OnnxDecoder.js";
import { OnnxTokenizer } from "../../../src/backends/onnx/OnnxTokenizer.js";
import { argmax } from "../../../src/backends/onnx/sampleToken.js";
import { ensureTinyLlmOnnx, type ReferenceIds } from "../../fixtures/ensurePythonFixtures.js";

let reference: ReferenceIds;
let tokenizer: OnnxTokenizer;
let template: ChatTemplate;
let opened: OnnxSession;
let decoder: OnnxDecoder;

beforeAll(async () => {
  const fixture = await ensureTinyLlmOnnx();
  reference = JSON.parse(await readFile(fixture.reference, "utf8")) as ReferenceIds;
  tokenizer = await OnnxTokenizer.load(fixture.dir);
  template = (await ChatTemplate.load(fixture.dir, tokenizer.config, { modelId: "tiny" }))!;
  opened = await createOnnxSession(`${fixture.dir}/model.onnx`, { threads: 1, providers: ["cpu"], device: undefined, logger: pino({ level: "silent" }) });
  const inputs = opened.session.inputMetadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name }));
  const graph = describeDecoderGraph(inputs, opened.session.outputMetadata, { heads: null, headDim: null });
  decoder = new OnnxDecoder(opened.ort, opened.session, graph);
}, 300_000);

async function greedy(prompt: number[], n: number): Promise<number[]> {
  const state = decoder.start();
  let logits = await decoder.step(state, prompt);
  const out: number[] = [];
  for (;;) {
    out.push(argmax(logits));
    if (out.length === n) return out;
    logits = await decoder.step(state, [out.at(-1)!]);
  }
}

describe("ONNX engine vs Python transformers (tiny llama)", () => {
  it("exports a KV-cache graph the engine recognises", () => {
    expect(decoder.graph.cache).toHaveLength(4); // 2 layers × key/value
    expect(decoder.graph.cache[0]).toMatchObject({ input: "past_key_values.0.key", output: "present.0.key", heads: 2, headDim: 16 });
    expect(decoder.graph.positionIds).toBe("position_ids");
    expect(opened.provider).toBe("cpu");
  });

  it("tokenizes prompts exactly as transformers does", () => {
    for (const c of reference.completions) expect(tokenizer.encode(c.prompt, true), c.prompt).toEqual(c.prompt_ids);
  });

  it("renders the chat template and tokenizes it as apply_chat_template does", async () => {
    for (const c of reference.chats) expect(tokenizer.encode(await template.render(c.messages), false)).toEqual(c.prompt_ids);
  });

  it("greedy-decodes the same token ids as transformers, for every prompt", async () => {
    for (const c of [...reference.completions, ...reference.chats]) {
      expect(await greedy(c.prompt_ids, reference.max_tokens), JSON.stringify(c.prompt_ids)).toEqual(c.ids);
    }
  });

  it("decodes token ids to the text transformers decodes", () => {
    for (const c of reference.completions) expect(tokenizer.decode(c.ids.slice(0, c.completion_tokens))).toBe(c.text);
  });
});
