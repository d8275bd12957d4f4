import { ModelNotFoundError } from "../core/errors.js";
import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

/** Models on OpenAI-compatible servers (LM Studio, Ollama, vLLM, ...): requests are proxied as the API describes them. */
export const upstreamEngine: EngineSpec = {
  name: "upstream",
  summary: "an OpenAI-compatible server the daemon proxies to (LM Studio, Ollama, vLLM, ...)",
  formats: [],
  why: "served by an upstream OpenAI-compatible server",
  install: "no upstream server is configured for this model",
  capabilities: capabilities("chat", "completions", "embeddings", "rerank", "tools", "jsonObject", "jsonSchema", "logprobs", "multipleChoices"),
  load: async () => {
    const { UpstreamBackend } = await import("../backends/upstream/UpstreamBackend.js");
    return (descriptor, { services }) => {
      const name = descriptor.upstream?.name;
      const client = name === undefined ? undefined : services.upstreams.client(name);
      // The catalog lists only models of configured upstreams, so this is a model that vanished from the config.
      if (!name || !client) throw new ModelNotFoundError(descriptor.id);
      return new UpstreamBackend(descriptor, client, services.upstreams.parallel(name));
    };
  },
};
