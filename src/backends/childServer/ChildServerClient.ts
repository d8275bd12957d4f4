import type { RerankRequest, RerankResult } from "../../core/rerank.js";
import type { Logger } from "pino";
import { UpstreamError } from "../../core/errors.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk } from "../../core/types.js";
import type { ManagedProcess } from "../../supervisor/ManagedProcess.js";
import { OpenAIUpstream } from "../openaiHttp/OpenAIUpstream.js";
import type { ChildEndpoint } from "./ChildEndpoint.js";

/** What the client needs of the child's supervisor (a ManagedProcess; tests pass a fake). */
export type SupervisedChild = Pick<ManagedProcess<ChildEndpoint>, "ensureReady" | "confirmGone" | "recycle">;

export interface ChildServerClientOptions {
  /** For error messages and logs: `llama-server`, `transformers`. */
  name: string;
  modelId: string;
  process: SupervisedChild;
  logger: Logger;
  /** No chunk for this long (the first one included) means the engine is wedged: the process is replaced. */
  stallTimeoutMs: number;
  /** Until response headers arrive; a local child answers at once unless it is gone. */
  connectTimeoutMs?: number;
}

/**
 * Requests to a supervised child that speaks the OpenAI API (llama-server, the transformers sidecar): always to
 * its current endpoint (socket, key and keep-alive agent of the running start), retried once when the child just
 * died under them, and cut off (with the child replaced) when a generation stalls.
 */
export class ChildServerClient {
  constructor(private readonly options: ChildServerClientOptions) {}

  private async upstream(signal: AbortSignal): Promise<{ upstream: OpenAIUpstream; endpoint: ChildEndpoint }> {
    const { address: endpoint } = await this.options.process.ensureReady(signal);
    const upstream = new OpenAIUpstream({
      name: this.options.name,
      baseUrl: endpoint.baseUrl,
      apiKey: endpoint.key,
      ...(endpoint.socketPath !== null ? { socketPath: endpoint.socketPath } : {}),
      agent: endpoint.agent,
      connectTimeoutMs: this.options.connectTimeoutMs ?? 10_000,
      firstByteTimeoutMs: this.options.stallTimeoutMs + 1_000, // the stall watchdog below acts first
    });
    return { upstream, endpoint };
  }

  /**
   * A request that finds the socket closed because the child just died (its exit not yet seen by the supervisor)
   * is tried once more against the restarted child; nothing reached the engine, so the retry is safe.
   */
  private async *withRestart<T>(
    run: (upstream: OpenAIUpstream, signal: AbortSignal, endpoint: ChildEndpoint) => AsyncIterable<T>,
    signal: AbortSignal,
  ): AsyncIterable<T> {
    for (let attempt = 0; ; attempt++) {
      const { upstream, endpoint } = await this.upstream(signal);
      let yielded = false;
      try {
        for await (const item of this.watched(run(upstream, signal, endpoint), signal)) {
          yielded = true;
          yield item;
        }
        return;
      } catch (err) {
        const unreachable = err instanceof UpstreamError && err.code === "upstream_unreachable";
        if (yielded || attempt > 0 || !unreachable || !(await this.options.process.confirmGone(endpoint, 2_000, signal))) throw err;
        this.options.logger.warn({ model: this.options.modelId, address: endpoint.toString() }, `${this.options.name} child gone: retrying on its restart`);
      }
    }
  }

  /** Passes items through; if none comes for stallTimeoutMs, replaces the child (which ends the request). */
  private async *watched<T>(items: AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
    const { stallTimeoutMs, process, name, modelId } = this.options;
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        process.recycle(`a ${name} generation for ${modelId} produced nothing for ${Math.round(stallTimeoutMs / 1000)} s`);
      }, stallTimeoutMs);
    };
    arm();
    try {
      for await (const item of items) {
        arm();
        yield item;
      }
    } catch (err) {
      if (stalled && !signal.aborted) {
        throw new UpstreamError(
          `The ${name} engine for '${modelId}' stopped producing output for ${Math.round(stallTimeoutMs / 1000)} s; its process was replaced. Try again.`,
          { code: "engine_stalled", status: 504, cause: err },
        );
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.withRestart((u, s) => u.chat(request, this.options.modelId, s), signal);
  }

  complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.withRestart((u, s) => u.complete(request, this.options.modelId, s), signal);
  }

  /**
   * A request of the engine's own (an endpoint outside the OpenAI API) to the current child, with the same retry
   * and stall watchdog: `run` must throw UpstreamError `upstream_unreachable` when nothing reached the child.
   */
  stream<T>(run: (endpoint: ChildEndpoint, signal: AbortSignal) => AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
    return this.withRestart((_upstream, s, endpoint) => run(endpoint, s), signal);
  }

  async embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    const id = this.options.modelId;
    const once = (u: OpenAIUpstream, s: AbortSignal) =>
      (async function* () {
        yield await u.embed(request, id, s);
      })();
    for await (const result of this.withRestart(once, signal)) return result;
    throw new UpstreamError(`The ${this.options.name} engine sent no embeddings.`);
  }

  async rerank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    const id = this.options.modelId;
    const once = (u: OpenAIUpstream, s: AbortSignal) =>
      (async function* () {
        yield await u.rerank(request, id, s);
      })();
    for await (const result of this.withRestart(once, signal)) return result;
    throw new UpstreamError(`The ${this.options.name} engine sent no rerank scores.`);
  }
}
