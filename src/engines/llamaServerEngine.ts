import type { LlamaServerVariant } from "../native/findLlamaServer.js";
import { capabilities } from "./capabilities.js";
import type { EngineFactory, EngineSpec } from "./EngineSpec.js";

/** Both llama-server builds start the same way; only the binary they look up differs. */
export async function loadLlamaServer(variant: LlamaServerVariant): Promise<EngineFactory> {
  const { LlamaServerBackend } = await import("../backends/llamaServer/LlamaServerBackend.js");
  return (descriptor, { settings, config, logger, clock, processes, env }) =>
    new LlamaServerBackend(descriptor, {
      variant,
      logger,
      clock,
      processes,
      env,
      threads: settings.threads,
      contextSize: settings.contextSize,
      parallel: settings.parallel,
      gpuLayers: settings.gpuLayers,
      binaryPath: descriptor.engineOptions?.llamaServerPath,
      extraArgs: [...(descriptor.engineOptions?.args ?? []), ...(settings.chatTemplate ? ["--jinja", "--chat-template", settings.chatTemplate] : [])],
      stallTimeoutMs: config.stallTimeoutSeconds * 1000,
    });
}

export const llamaServerEngine: EngineSpec = {
  name: "llama-server",
  summary: "llama.cpp's llama-server as a supervised child process, GGUF chat, completion and embedding models",
  formats: ["gguf"],
  why: "GGUF runs on a supervised llama-server",
  install: "this daemon was started without the llama-server engine; see docs/native.md",
  // Tools and JSON modes: passed to llama-server, which renders them with the model's template (--jinja) and
  // enforces them with a grammar; named tool choices and json_object are reshaped in LlamaServerBackend.
  capabilities: capabilities("chat", "completions", "embeddings", "rerank", "tools", "jsonObject", "jsonSchema", "logprobs", "multipleChoices"),
  load: () => loadLlamaServer("standard"),
};
