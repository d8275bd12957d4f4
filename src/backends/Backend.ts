import { TabAgentError } from "../core/errors.js";
import type { RerankRequest, RerankResult } from "../core/rerank.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../core/types.js";

/**
 * One contract for every engine. The router owns the lifecycle: it calls `load` once (shared by concurrent
 * first requests), never calls `unload` while a request runs, and never runs more than `parallel` requests at once.
 * Generation streams end with a `finish` chunk and a `usage` chunk; errors are thrown from the iterator.
 */
export interface Backend {
  readonly descriptor: ModelDescriptor;
  /** Requests this backend can run at the same time. */
  readonly parallel: number;
  load(signal: AbortSignal): Promise<void>;
  unload(): Promise<void>;
  chat?(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk>;
  complete?(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk>;
  embed?(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult>;
  /** One score per document, in request order (see RerankResult for what a score is). */
  rerank?(request: RerankRequest, signal: AbortSignal): Promise<RerankResult>;
  /** What the engine runs on while loaded (the ONNX execution provider, say), for /v1/models; null when unloaded. */
  runtimeInfo?(): RuntimeInfo | null;
  /** Engines that run a child process report it (state, restarts) for /health and metrics. */
  readonly processStatus?: { restarts: number } | null;
}

export type RuntimeInfo = Record<string, string | number | boolean | string[] | null>;

type Operation = "chat" | "complete" | "embed" | "rerank";

/**
 * A backend's operation, bound, for a route that has already checked the engine's capabilities. A backend lacking
 * it is a wiring bug (its engine declares a capability it does not implement): a 500 naming the engine, not a crash.
 */
export function backendOperation<K extends Operation>(backend: Backend, operation: K): NonNullable<Backend[K]> {
  const fn = backend[operation];
  if (typeof fn !== "function") {
    throw new TabAgentError(`The ${backend.descriptor.engine ?? "model's"} engine has no ${operation} operation, although it declares the capability.`);
  }
  return fn.bind(backend) as NonNullable<Backend[K]>;
}

export type BackendFactory = (descriptor: ModelDescriptor) => Backend;
