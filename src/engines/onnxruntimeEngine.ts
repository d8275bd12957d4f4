import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

export const onnxruntimeEngine: EngineSpec = {
  name: "onnxruntime",
  summary: "ONNX Runtime in the daemon's process (onnxruntime-node), ONNX decoder and encoder graphs",
  formats: ["onnx"],
  why: "ONNX graphs run on ONNX Runtime",
  install: "onnxruntime-node failed to install; run `npm ci` again (docs/backends.md, ONNX Runtime)",
  capabilities: capabilities("chat", "completions", "embeddings", "tokenIds", "logprobs", "multipleChoices", "tools", "jsonObject", "jsonSchema"),
  load: async () => {
    const { OnnxBackend } = await import("../backends/onnx/OnnxBackend.js");
    return (descriptor, { settings, config, logger }) =>
      new OnnxBackend(descriptor, {
        logger,
        threads: settings.threads,
        contextSize: settings.contextSize,
        parallel: settings.parallel,
        providers: config.onnxProviders,
        chatTemplate: settings.chatTemplate,
      });
  },
};
