import type { RerankRequest, RerankResult } from "../../core/rerank.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../../core/types.js";
import type { Backend } from "../Backend.js";
import type { OpenAIUpstream } from "../openaiHttp/OpenAIUpstream.js";

/** A model on another OpenAI-compatible server (LM Studio, Ollama, vLLM, a llama-server elsewhere). */
export class UpstreamBackend implements Backend {
  private readonly model: string;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly client: OpenAIUpstream,
    readonly parallel: number,
  ) {
    this.model = descriptor.upstream?.model ?? descriptor.id;
  }

  // The upstream owns its models' lifecycle: nothing to load here, and nothing to free.
  async load(): Promise<void> {}
  async unload(): Promise<void> {}

  chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.client.chat(request, this.model, signal);
  }

  complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.client.complete(request, this.model, signal);
  }

  embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    return this.client.embed(request, this.model, signal);
  }

  /** Passed through: the upstream's scores as it sent them (`/rerank` under its base URL). */
  rerank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    return this.client.rerank(request, this.model, signal);
  }
}
