import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

/**
 * LiteRT-LM in a supervised Python child (its own venv): chat and completions with streaming, stop sequences,
 * max_tokens, temperature/top_p/top_k/seed. Its Python API streams text, not token ids or log probabilities, and has
 * no grammar hook, so those features are refused (400) rather than approximated.
 */
export const litertEngine: EngineSpec = {
  name: "litert",
  summary: "LiteRT-LM in a supervised Python child: .litertlm and LLM .task bundles",
  formats: ["litert"],
  why: "LiteRT bundles run on the LiteRT-LM runtime",
  install: "the LiteRT engine's Python environment is not available; run `tabagent setup litert` (docs/backends.md)",
  capabilities: capabilities("chat", "completions"),
  load: async () => {
    const { LiteRtBackend } = await import("../backends/litert/LiteRtBackend.js");
    return (descriptor, { settings, config, logger, clock, processes, env, services }) =>
      new LiteRtBackend(descriptor, {
        logger,
        clock,
        processes,
        env,
        dataDir: config.dataDir,
        setup: services.pythonSetup,
        stallTimeoutMs: config.stallTimeoutSeconds * 1000,
        threads: settings.threads,
        chatTemplate: settings.chatTemplate,
      });
  },
};
