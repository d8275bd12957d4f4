import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

export const transformersEngine: EngineSpec = {
  name: "transformers",
  summary: "Hugging Face transformers in a supervised Python sidecar, SafeTensors (and allowed pickle) folders",
  formats: ["safetensors", "pytorch"],
  why: "Transformers weights run in the Python transformers sidecar",
  install: "the Python transformers sidecar is not available; run `tabagent setup python` (docs/backends.md)",
  capabilities: capabilities("chat", "completions", "embeddings", "rerank", "tokenIds", "tools", "jsonObject", "jsonSchema", "logprobs", "multipleChoices"),
  load: async () => {
    const { TransformersBackend } = await import("../backends/transformers/TransformersBackend.js");
    return (descriptor, { settings, config, logger, clock, processes, env, services }) =>
      new TransformersBackend(descriptor, {
        logger,
        clock,
        processes,
        env,
        threads: settings.threads,
        parallel: settings.parallel,
        pythonPath: config.python,
        dataDir: config.dataDir,
        setup: services.pythonSetup,
        stallTimeoutMs: config.stallTimeoutSeconds * 1000,
        chatTemplate: settings.chatTemplate,
      });
  },
};
