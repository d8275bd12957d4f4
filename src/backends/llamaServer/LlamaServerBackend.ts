import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { EngineUnavailableError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import { findLlamaServer, missingBinaryHelp, type LlamaServerVariant } from "../../native/findLlamaServer.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import { ChildServerBackend } from "../childServer/ChildServerBackend.js";

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
  /** A generation silent for this long is treated as hung and the child replaced. Default 300 000. */
  stallTimeoutMs?: number;
}

/**
 * A GGUF model in a supervised llama-server child (the standard build, or Microsoft's BitNet build). The child is
 * started on load, stopped on unload, restarted by the supervisor if it dies; requests go through the same
 * OpenAI client as any upstream, so streaming is passed through chunk by chunk.
 */
export class LlamaServerBackend extends ChildServerBackend {
  readonly parallel: number;
  private binary: string | null = null;

  constructor(
    descriptor: ModelDescriptor,
    private readonly options: LlamaServerBackendOptions,
  ) {
    super(descriptor);
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
    await this.startChild(
      () => ({
        name: `${this.engineName()}:${this.descriptor.id}`,
        command: (port) => ({ file: binary, args: this.args(port) }),
        logger: this.options.logger,
        clock: this.options.clock,
        registry: this.options.processes,
        startTimeoutMs: this.options.startTimeoutMs ?? 120_000,
      }),
      { name: this.engineName(), logger: this.options.logger, stallTimeoutMs: this.options.stallTimeoutMs ?? 300_000 },
      signal,
    );
  }
}
