// The same weights on three engines (see crossBackend.test.ts), each with its own constraint machinery: llama.cpp's
// grammar (node-llama-cpp), llguidance (transformers sidecar) and the ONNX engine's JSON Schema matcher. With a
// forced schema and greedy decoding, the arguments and objects they produce must be the same values.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyLlm, ensureTinyLlmGguf, ensureTinyLlmOnnx, pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const MODELS = ["llm-transformers", "llm-llamacpp", "llm-onnx"] as const;

let t: TestDaemon;
beforeAll(async () => {
  const [st, gguf, onnx, python] = await Promise.all([ensureTinyLlm(), ensureTinyLlmGguf(), ensureTinyLlmOnnx(), pythonExecutable()]);
  t = await startTestDaemon(
    {
      contextSize: 2048,
      models: [
        { id: "llm-transformers", path: st },
        { id: "llm-llamacpp", path: gguf },
        { id: "llm-onnx", path: onnx.dir },
      ],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python },
  );
}, 300_000);
afterAll(async () => {
  await t?.close();
});

// Enum-valued fields: which value the model picks is decided by its logits alone, whatever whitespace a grammar
// allows around it, so three engines with the same weights must pick the same ones.
const PALETTE = {
  type: "object",
  properties: { color: { type: "string", enum: ["red", "green", "blue"] }, size: { type: "string", enum: ["small", "large"] }, lit: { type: "boolean" } },
  required: ["color", "size", "lit"],
  additionalProperties: false,
};
const paint = { type: "function" as const, function: { name: "paint", parameters: PALETTE } };
const PROMPTS = ["Paint the wall.", "What colour is the sky?", "Hello there"];

describe("structured output across engines with the same weights", () => {
  it("a forced tool call greedily gives the same arguments on all three", async () => {
    for (const content of PROMPTS) {
      const args = [];
      for (const model of MODELS) {
        const r = await t.client.chat.completions.create({
          model,
          messages: [{ role: "user", content }],
          tools: [paint],
          tool_choice: "required",
          max_tokens: 160,
          temperature: 0,
        });
        const call = r.choices[0]!.message.tool_calls?.[0];
        if (!call) throw new Error(`${model} made no call for '${content}': ${JSON.stringify(r.choices[0])}`);
        if (call.type !== "function") throw new Error("not a function call");
        expect(call.function.name, model).toBe("paint");
        args.push(JSON.parse(call.function.arguments) as unknown);
      }
      expect(args[1], `${content}: node-llama-cpp vs transformers`).toEqual(args[0]);
      expect(args[2], `${content}: onnxruntime vs transformers`).toEqual(args[0]);
    }
  });

  it("json_schema output greedily gives the same object on all three", async () => {
    for (const content of PROMPTS) {
      const values = [];
      for (const model of MODELS) {
        const r = await t.client.chat.completions.create({
          model,
          messages: [{ role: "user", content }],
          response_format: { type: "json_schema", json_schema: { name: "palette", schema: PALETTE, strict: true } },
          max_tokens: 160,
          temperature: 0,
        });
        values.push(JSON.parse(r.choices[0]!.message.content!) as unknown);
      }
      expect(values[1], `${content}: node-llama-cpp vs transformers`).toEqual(values[0]);
      expect(values[2], `${content}: onnxruntime vs transformers`).toEqual(values[0]);
    }
  });
});
