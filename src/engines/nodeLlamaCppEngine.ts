import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

export const nodeLlamaCppEngine: EngineSpec = {
  name: "node-llama-cpp",
  summary: "llama.cpp in the daemon's process (node-llama-cpp), GGUF chat, completion and embedding models",
  formats: ["gguf"],
  why: "GGUF runs in process on node-llama-cpp",
  install: "node-llama-cpp failed to install; run `npm ci` again",
  capabilities: capabilities("chat", "completions", "embeddings", "rerank", "tokenIds", "tools", "jsonObject", "jsonSchema", "logprobs", "multipleChoices"),
  load: async () => {
    const { NodeLlamaCppBackend } = await import("../backends/llamacpp/NodeLlamaCppBackend.js");
    return (descriptor, { settings, logger, services }) =>
      new NodeLlamaCppBackend(descriptor, {
        provider: services.llama,
        logger,
        threads: settings.threads,
        contextSize: settings.contextSize,
        parallel: settings.parallel,
        gpuLayers: settings.gpuLayers,
        chatTemplate: settings.chatTemplate,
        probe: services.ggufProbe,
      });
  },
};
