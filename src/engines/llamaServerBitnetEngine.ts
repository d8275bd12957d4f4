import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";
import { loadLlamaServer } from "./llamaServerEngine.js";

export const llamaServerBitnetEngine: EngineSpec = {
  name: "llama-server-bitnet",
  summary: "the BitNet build of llama-server as a supervised child process, BitNet 1.58-bit GGUF models",
  formats: ["bitnet-gguf"],
  why: "BitNet 1.58 kernels need the BitNet build of llama-server",
  install: "this daemon was started without the BitNet llama-server engine; see docs/native.md",
  // No tools, JSON modes or logprobs: the fork (llama.cpp of autumn 2024) has no --jinja and its own logprob format.
  // n > 1 runs one child request per choice (LlamaServerBackend).
  capabilities: capabilities("chat", "completions", "embeddings", "multipleChoices"),
  load: () => loadLlamaServer("bitnet"),
};
