import type { Logger } from "pino";
import { ModelNotLoadedError } from "../../core/errors.js";
import type { RerankRequest, RerankResult } from "../../core/rerank.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../../core/types.js";
import type { ManagedProcess, ManagedProcessOptions } from "../../supervisor/ManagedProcess.js";
import type { Backend } from "../Backend.js";
import { ChildEndpoint } from "./ChildEndpoint.js";
import { ChildServerClient } from "./ChildServerClient.js";

/** How a subclass starts its child: everything but where it listens, which is a fresh ChildEndpoint per start. */
export type ChildProcessOptions = Omit<ManagedProcessOptions<ChildEndpoint>, "addresses" | "findPort" | "healthCheck">;

/**
 * A model served by one supervised child that speaks the OpenAI API (llama-server, the transformers sidecar) on a
 * private Unix socket with a per-start key (see ChildEndpoint): subclasses say how to start it; requests, unload
 * and status are the same for all.
 */
export abstract class ChildServerBackend implements Backend {
  abstract readonly parallel: number;
  private process: ManagedProcess<ChildEndpoint> | null = null;
  private client: ChildServerClient | null = null;

  constructor(readonly descriptor: ModelDescriptor) {}

  abstract load(signal: AbortSignal): Promise<void>;

  /** Creates the child's supervisor on the first load (the options are read once) and waits until it serves. */
  protected async startChild(
    processOptions: () => ChildProcessOptions,
    client: { name: string; logger: Logger; stallTimeoutMs: number; transport?: "unix" | "tcp"; keepAlive?: boolean },
    signal: AbortSignal,
  ): Promise<void> {
    // Imported on first use: the process machinery (execa) costs memory that a daemon without children never needs.
    const { ManagedProcess } = await import("../../supervisor/ManagedProcess.js");
    if (!this.process) {
      const options = processOptions();
      this.process = new ManagedProcess<ChildEndpoint>({
        ...options,
        // The daemon's own keys are not the child's business (it inherits the rest of the daemon's environment).
        command: (endpoint) => {
          const spec = options.command(endpoint);
          return { ...spec, env: { ...spec.env, TABAGENT_API_KEYS: undefined } };
        },
        // Each start: a fresh private socket and key; released (directory removed, connections closed) on exit.
        addresses: {
          allocate: () => ChildEndpoint.create({ transport: client.transport, keepAlive: client.keepAlive }),
          release: (endpoint) => endpoint.close(),
          describe: (endpoint) => endpoint.toString(),
          port: (endpoint) => endpoint.port,
        },
        healthCheck: ChildEndpoint.healthCheck("/health"),
      });
    }
    this.client ??= new ChildServerClient({ ...client, modelId: this.descriptor.id, process: this.process });
    await this.process.ensureReady(signal);
  }

  async unload(): Promise<void> {
    await this.process?.stop();
  }

  private get requests(): ChildServerClient {
    if (!this.client) throw new ModelNotLoadedError(this.descriptor.id);
    return this.client;
  }

  chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.requests.chat(request, signal);
  }

  complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.requests.complete(request, signal);
  }

  /** An engine-specific request to the child (see ChildServerClient.stream). */
  protected viaChild<T>(run: (endpoint: ChildEndpoint, signal: AbortSignal) => AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
    return this.requests.stream(run, signal);
  }

  embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    return this.requests.embed(request, signal);
  }

  /** The child's own scores; an engine whose child sends raw logits converts them (LlamaServerBackend). */
  rerank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    return this.requests.rerank(request, signal);
  }

  get processStatus() {
    return this.process?.status ?? null;
  }
}
