import { InvalidRequestError, UnsupportedParameterError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import type { Capability, RequestedFeature } from "./capabilities.js";
import { ENGINES, enginesWith } from "./engineTable.js";

export type EndpointCapability = Extract<Capability, "chat" | "completions" | "embeddings" | "rerank">;

const PATHS: Record<EndpointCapability, string> = { chat: "/v1/chat/completions", completions: "/v1/completions", embeddings: "/v1/embeddings", rerank: "/v1/rerank" };

/**
 * The one check of a request against the engine that serves its model: a feature the engine lacks is a 400
 * `unsupported_parameter` naming the parameter, the engine, and the engines that do support it.
 */
export function checkCapabilities(descriptor: ModelDescriptor, endpoint: EndpointCapability, features: readonly RequestedFeature[]): void {
  const engine = descriptor.engine;
  if (engine === null) return; // the catalog refuses unservable models before this
  const { capabilities } = ENGINES[engine];
  if (!capabilities[endpoint]) {
    throw new InvalidRequestError(`The ${engine} engine that serves '${descriptor.id}' cannot serve ${PATHS[endpoint]}.`, {
      param: "model",
      code: "model_task_mismatch",
    });
  }
  for (const { capability, param } of features) {
    if (capabilities[capability]) continue;
    const others = enginesWith(capability);
    const where = others.length > 0 ? `engines that support it: ${others.join(", ")}` : "no engine supports it yet";
    throw new UnsupportedParameterError(param, `is not supported by the ${engine} engine that serves '${descriptor.id}' (${where})`);
  }
}
