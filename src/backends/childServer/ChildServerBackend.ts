import type { Logger } from "pino";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../../core/types.js";
import type { ManagedProcess, ManagedProcessOptions } from "../../supervisor/ManagedProcess.js";
import type { Backend } from "../Backend.js";
import { ChildServerClient } from "./ChildServerClient.js";

/**
 * A model served by one supervised child that speaks the OpenAI API on 127.0.0.1 (llama-server, the transformers
 * sidecar): subclasses say how to start it; requests, unload and status are the same for all.
 */
export abstract class ChildServerBackend implements Backend {
  abstract readonly parallel: number;
  private process: ManagedProcess | null = null;
  private client: ChildServerClient | null = null;

  constructor(readonly descriptor: ModelDescriptor) {}

  abstract load(signal: AbortSignal): Promise<void>;

  /** Creates the child's supervisor on the first load (the options are read once) and waits until it serves. */
  protected async startChild(
    processOptions: () => ManagedProcessOptions,
    client: { name: string; logger: Logger; stallTimeoutMs: number },
    signal: AbortSignal,
  ): Promise<void> {
    // Imported on first use: the process machinery (execa) costs memory that a daemon without children never needs.
    const { ManagedProcess } = await import("../../supervisor/ManagedProcess.js");
    this.process ??= new ManagedProcess(processOptions());
    this.client ??= new ChildServerClient({ ...client, modelId: this.descriptor.id, process: this.process });
    await this.process.ensureReady(signal);
  }

  async unload(): Promise<void> {
    await this.process?.stop();
  }

  private get requests(): ChildServerClient {
    if (!this.client) throw new Error(`model ${this.descriptor.id} is not loaded`);
    return this.client;
  }

  chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.requests.chat(request, signal);
  }

  complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.requests.complete(request, signal);
  }

  embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    return this.requests.embed(request, signal);
  }

  get processStatus() {
    return this.process?.status ?? null;
  }
}
