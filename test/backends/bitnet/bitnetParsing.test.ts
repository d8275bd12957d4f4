import { describe, expect, it } from "vitest";
import { bitnetCompletionBody } from "../../../src/backends/llamaServer/bitnetCompletion.js";
import { parseKernelShapes } from "../../../src/backends/llamaServer/bitnetKernelCheck.js";
import { bitnetLoadFailure } from "../../../src/backends/llamaServer/LlamaServerBackend.js";
import type { CompletionRequest } from "../../../src/core/types.js";

describe("BitNet llama-server: what the daemon reads from and sends to the fork", () => {
  it("reads the kernel shapes codegen_tl2.py writes", () => {
    const ini = "[Kernels_0]\nm = 1536\nk = 4096\nbm = 256\n\n[Kernels_1]\nm = 1536\nk = 1536\n\n[Kernels_2]\nk = 1536\nm = 4096\n";
    expect(parseKernelShapes(ini)).toEqual([
      { m: 1536, k: 4096 },
      { m: 1536, k: 1536 },
      { m: 4096, k: 1536 },
    ]);
    expect(parseKernelShapes("")).toEqual([]);
    expect(parseKernelShapes("[Kernels_0]\nm = 12\n")).toEqual([]); // no k: not a shape
  });

  it("passes on the fork's load error and nothing else of its output", () => {
    const lines = [
      "hub: HF_TOKEN=secret",
      "llama_model_load: error loading model: check_tensor_dims: tensor 'blk.2.attn_norm.weight' not found",
      "llama_load_model_from_file: failed to load model",
      "main: exiting due to model loading error",
    ];
    expect(bitnetLoadFailure(lines)).toBe("check_tensor_dims: tensor 'blk.2.attn_norm.weight' not found");
    expect(bitnetLoadFailure(["ggml.c:1234: GGML_ASSERT(n_dims <= 4) failed"])).toBe("GGML_ASSERT(n_dims <= 4) failed");
    expect(bitnetLoadFailure(["error: invalid argument: --jinja"])).toBeNull();
    expect(bitnetLoadFailure([])).toBeNull();
  });

  it("sends every sampler explicitly to the native /completion endpoint", () => {
    const request = {
      model: "m",
      prompt: "The cat",
      echo: false,
      n: 1,
      logprobs: null,
      returnTokenIds: false,
      responseFormat: { type: "text" },
      sampling: { maxTokens: 8, temperature: 0, topP: undefined, seed: 7, presencePenalty: 0, frequencyPenalty: 0.5, stop: ["\n"] },
    } satisfies CompletionRequest;
    expect(bitnetCompletionBody(request)).toEqual({
      prompt: "The cat",
      n_predict: 8,
      temperature: 0,
      top_p: 1,
      top_k: 0,
      min_p: 0,
      repeat_penalty: 1,
      presence_penalty: 0,
      frequency_penalty: 0.5,
      seed: 7,
      stop: ["\n"],
      stream: true,
    });
    expect(bitnetCompletionBody({ ...request, sampling: { ...request.sampling, maxTokens: undefined, seed: undefined, stop: [] } })).not.toHaveProperty("seed");
    expect(bitnetCompletionBody({ ...request, sampling: { ...request.sampling, maxTokens: undefined } }).n_predict).toBe(-1);
  });
});
