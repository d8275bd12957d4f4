// OnnxBackend on its own (no HTTP): layouts, cancellation between tokens, unload.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { OnnxProviderName } from "../../../src/backends/onnx/chooseExecutionProviders.js";
import { OnnxBackend } from "../../../src/backends/onnx/OnnxBackend.js";
import { OnnxDecoder } from "../../../src/backends/onnx/OnnxDecoder.js";
import { onnxDetails } from "../../../src/core/detectionSchema.js";
import type { CompletionRequest, GenerationChunk, ModelDescriptor } from "../../../src/core/types.js";
import { describeLocalModels } from "../../../src/registry/ModelRegistry.js";
import { ensureTinyLlmOnnx, type ReferenceIds } from "../../fixtures/ensurePythonFixtures.js";

let reference: ReferenceIds;
let scratch: string;

async function backendFor(path: string, providers: OnnxProviderName[] = ["cpu"]): Promise<OnnxBackend> {
  const [found] = await describeLocalModels(path);
  const descriptor: ModelDescriptor = { id: "m", ...found!.descriptor };
  expect(descriptor.engine).toBe("onnxruntime");
  return new OnnxBackend(descriptor, { logger: pino({ level: "silent" }), threads: 1, contextSize: 512, parallel: 4, providers });
}

function request(prompt: string, maxTokens: number, extra: Partial<CompletionRequest["sampling"]> = {}): CompletionRequest {
  return {
    model: "m",
    prompt,
    echo: false,
    n: 1,
    logprobs: null,
    returnTokenIds: false,
    responseFormat: { type: "text" },
    sampling: { maxTokens, temperature: 0, topP: undefined, seed: undefined, presencePenalty: 0, frequencyPenalty: 0, stop: [], ...extra },
  };
}

async function text(chunks: AsyncIterable<GenerationChunk>): Promise<string> {
  let out = "";
  for await (const c of chunks) if (c.type === "text") out += c.text;
  return out;
}

beforeAll(async () => {
  const llm = await ensureTinyLlmOnnx();
  reference = JSON.parse(await readFile(llm.reference, "utf8")) as ReferenceIds;
  scratch = await mkdtemp(join(tmpdir(), "tabagent-onnx-backend-"));
}, 300_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("OnnxBackend", () => {
  it("transformers.js layout (onnx/model.onnx, tokenizer at the root) gives the reference continuation", async () => {
    const js = await ensureTinyLlmOnnx({ layout: "transformers.js" });
    const backend = await backendFor(js.dir);
    expect(onnxDetails(backend.descriptor.detection)?.layout).toBe("transformers.js");
    await backend.load(AbortSignal.timeout(60_000));
    const c = reference.completions[2]!;
    expect(await text(backend.complete(request(c.prompt, reference.max_tokens), new AbortController().signal))).toBe(c.text);
    await backend.unload();
  });

  it("onnxruntime-genai folder: the decoder and cache names come from genai_config.json", async () => {
    const llm = await ensureTinyLlmOnnx();
    const dir = join(scratch, "genai");
    await cp(llm.dir, dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, number>;
    await writeFile(
      join(dir, "genai_config.json"),
      JSON.stringify({
        model: {
          type: "llama",
          context_length: config["max_position_embeddings"],
          decoder: {
            filename: "model.onnx",
            inputs: {
              input_ids: "input_ids",
              attention_mask: "attention_mask",
              position_ids: "position_ids",
              past_key_names: "past_key_values.%d.key",
              past_value_names: "past_key_values.%d.value",
            },
            outputs: { logits: "logits", present_key_names: "present.%d.key", present_value_names: "present.%d.value" },
          },
          eos_token_id: config["eos_token_id"],
        },
      }),
    );
    const backend = await backendFor(dir);
    expect(onnxDetails(backend.descriptor.detection)?.layout).toBe("onnxruntime-genai");
    await backend.load(AbortSignal.timeout(60_000));
    const c = reference.completions[3]!;
    expect(await text(backend.complete(request(c.prompt, reference.max_tokens), new AbortController().signal))).toBe(c.text);
    await backend.unload();
  });

  it("stops within one token of an abort: no decode step runs after it", async () => {
    const llm = await ensureTinyLlmOnnx();
    const backend = await backendFor(llm.dir);
    await backend.load(AbortSignal.timeout(60_000));
    const step = vi.spyOn(OnnxDecoder.prototype, "step");
    const controller = new AbortController();
    const it = backend.complete(request(reference.completions[0]!.prompt, 400), controller.signal)[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const steps = step.mock.calls.length;
    controller.abort(new Error("client went away"));
    await expect(it.next()).rejects.toThrow("client went away");
    expect(step.mock.calls.length).toBe(steps);
    step.mockRestore();
    // The backend keeps serving.
    const c = reference.completions[0]!;
    expect(await text(backend.complete(request(c.prompt, reference.max_tokens), new AbortController().signal))).toBe(c.text);
    await backend.unload();
  });

  it("reports its execution provider while loaded (runtimeInfo), not on the shared descriptor, and continues a trailing assistant message", async () => {
    const llm = await ensureTinyLlmOnnx();
    const backend = await backendFor(llm.dir);
    await backend.load(AbortSignal.timeout(60_000));
    expect(backend.runtimeInfo()).toMatchObject({ engine: "onnxruntime", execution_provider: "cpu" });
    expect(backend.descriptor).not.toHaveProperty("runtime");
    expect(backend.provider).toBe("cpu");
    const chat = backend.chat(
      {
        ...request("", 4),
        messages: [
          { role: "user", content: "Hello!" },
          { role: "assistant", content: "The sky" },
        ],
        tools: [],
        toolChoice: { type: "none" },
        parallelToolCalls: true,
      },
      new AbortController().signal,
    );
    const chunks: GenerationChunk[] = [];
    for await (const c of chat) chunks.push(c);
    const usage = chunks.find((c) => c.type === "usage");
    // "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nThe sky" with no end-of-turn after it.
    expect(usage && usage.type === "usage" ? usage.usage.promptTokens : 0).toBeGreaterThan(reference.chats[0]!.prompt_ids.length);
    await backend.unload();
    expect(backend.runtimeInfo()).toBeNull();
  });

  it("a configured GPU provider that is missing or cannot start falls back to CPU, and says why", async () => {
    const llm = await ensureTinyLlmOnnx();
    // CUDA's library is not installed here (onnxruntime-node's install script does not run); WebGPU is bundled but this
    // machine has no adapter (on one that has, it would run there: the second assertion then does not hold).
    const backend = await backendFor(llm.dir, ["cuda", "webgpu", "cpu"]);
    await backend.load(AbortSignal.timeout(60_000));
    const runtime = backend.runtimeInfo()!;
    if (runtime["execution_provider"] === "cpu") {
      expect((runtime["notes"] as string[]).join("\n")).toMatch(/cuda execution provider is not installed.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    }
    const c = reference.completions[4]!;
    expect(await text(backend.complete(request(c.prompt, reference.max_tokens), new AbortController().signal))).toBe(c.text);
    await backend.unload();
  });
});
