import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { EngineUnavailableError, UpstreamError } from "../../core/errors.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../../core/types.js";
import { findLlamaServer, missingBinaryHelp, type LlamaServerVariant } from "../../native/findLlamaServer.js";
import type { ManagedProcess } from "../../supervisor/ManagedProcess.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { Backend } from "../Backend.js";
import { OpenAIUpstream } from "../openaiHttp/OpenAIUpstream.js";

export interface LlamaServerBackendOptions {
  variant: LlamaServerVariant;
  logger: Logger;
  clock: Clock;
  processes: ProcessRegistry;
  env: NodeJS.ProcessEnv;
  threads: number;
  /** Tokens per slot; llama-server divides `-c` among its slots, so it gets `contextSize × parallel`. */
  contextSize: number;
  parallel: number;
  gpuLayers: "auto" | "max" | number;
  /** The model's own binary (config `llamaServerPath`), tried before the lookup order. */
  binaryPath?: string;
  /** Extra llama-server arguments from the model's config. */
  extraArgs?: string[];
  startTimeoutMs?: number;
}

/**
 * A GGUF model in a supervised llama-server child (the standard build, or Microsoft's BitNet build). The child is
 * started on load, stopped on unload, restarted by the supervisor if it dies; requests go through the same
 * OpenAI client as any upstream, so streaming is passed through chunk by chunk.
 */
export class LlamaServerBackend implements Backend {
  readonly parallel: number;
  private process: ManagedProcess | null = null;
  private binary: string | null = null;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly options: LlamaServerBackendOptions,
  ) {
    this.parallel = options.parallel;
  }

  private engineName(): string {
    return this.options.variant === "bitnet" ? "llama-server-bitnet" : "llama-server";
  }

  private args(port: number): string[] {
    const { threads, contextSize, parallel, gpuLayers, extraArgs = [] } = this.options;
    const d = this.descriptor.detection;
    const ctx = Math.min(contextSize, d.contextLength ?? contextSize);
    const projector = d.files.find((f) => f.role === "projector");
    const modelDir = this.descriptor.path.slice(0, this.descriptor.path.length - (d.files[0]?.path.length ?? 0));
    return [
      "--model", this.descriptor.path,
      "--host", "127.0.0.1",
      "--port", String(port),
      "--ctx-size", String(ctx * parallel),
      "--parallel", String(parallel),
      "--threads", String(threads),
      ...(gpuLayers === "auto" ? [] : ["--n-gpu-layers", gpuLayers === "max" ? "999" : String(gpuLayers)]),
      ...(this.descriptor.task === "embeddings" ? ["--embeddings"] : ["--jinja"]),
      ...(projector ? ["--mmproj", `${modelDir}${projector.path}`] : []),
      ...extraArgs,
    ];
  }

  async load(signal: AbortSignal): Promise<void> {
    if (!this.binary) {
      const found = await findLlamaServer(this.options.variant, { configPath: this.options.binaryPath, env: this.options.env });
      if (found.path === null) throw new EngineUnavailableError(this.descriptor.id, this.engineName(), missingBinaryHelp(this.options.variant));
      this.binary = found.path;
      this.options.logger.info({ binary: found.path, from: found.source }, "using llama-server binary");
    }
    const binary = this.binary;
    // Imported on first use: the process machinery (execa) costs memory that a daemon without children never needs.
    const { ManagedProcess } = await import("../../supervisor/ManagedProcess.js");
    this.process ??= new ManagedProcess({
      name: `${this.engineName()}:${this.descriptor.id}`,
      command: (port) => ({ file: binary, args: this.args(port) }),
      logger: this.options.logger,
      clock: this.options.clock,
      registry: this.options.processes,
      startTimeoutMs: this.options.startTimeoutMs ?? 120_000,
    });
    await this.process.ensureReady(signal);
  }

  async unload(): Promise<void> {
    await this.process?.stop();
  }

  /** The child may have been restarted on another port since the last request. */
  private async client(signal: AbortSignal): Promise<{ upstream: OpenAIUpstream; port: number }> {
    if (!this.process) throw new Error(`model ${this.descriptor.id} is not loaded`);
    const { port } = await this.process.ensureReady(signal);
    const upstream = new OpenAIUpstream({
      name: this.engineName(),
      baseUrl: `http://127.0.0.1:${port}/v1`,
      connectTimeoutMs: 10_000,
      firstByteTimeoutMs: 600_000, // a long prompt is evaluated before the first byte
    });
    return { upstream, port };
  }

  /**
   * A request that finds the port closed because the child just died (its exit not yet seen by the supervisor)
   * is tried once more against the restarted child; nothing reached the engine, so the retry is safe.
   */
  private async *withRestart<T>(run: (upstream: OpenAIUpstream) => AsyncIterable<T>, signal: AbortSignal): AsyncIterable<T> {
    for (let attempt = 0; ; attempt++) {
      const { upstream, port } = await this.client(signal);
      let yielded = false;
      try {
        for await (const item of run(upstream)) {
          yielded = true;
          yield item;
        }
        return;
      } catch (err) {
        const unreachable = err instanceof UpstreamError && err.code === "upstream_unreachable";
        if (yielded || attempt > 0 || !unreachable || !(await this.process!.confirmGone(port, 2_000, signal))) throw err;
        this.options.logger.warn({ model: this.descriptor.id, port }, "llama-server child gone: retrying on its restart");
      }
    }
  }

  async *chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    yield* this.withRestart((u) => u.chat(request, this.descriptor.id, signal), signal);
  }

  async *complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    yield* this.withRestart((u) => u.complete(request, this.descriptor.id, signal), signal);
  }

  async embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    const id = this.descriptor.id;
    const once = (u: OpenAIUpstream) => (async function* () { yield await u.embed(request, id, signal); })();
    for await (const result of this.withRestart(once, signal)) return result;
    throw new Error("unreachable: embed yielded nothing");
  }

  get processStatus() {
    return this.process?.status ?? null;
  }
}
