import type {
  ChatRequest,
  CompletionRequest,
  EmbedRequest,
  EmbedResult,
  GenerationChunk,
  ModelDescriptor,
} from "../core/types.js";

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
  /** Whether chat/complete emit `token_ids` chunks when a request sets `returnTokenIds`. */
  readonly returnsTokenIds?: boolean;
  /** Engines that run a child process report it (state, restarts) for /health and metrics. */
  readonly processStatus?: { restarts: number } | null;
}

export type BackendFactory = (descriptor: ModelDescriptor) => Backend;
