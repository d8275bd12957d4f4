import { sigmoid, type RerankRequest, type RerankResult } from "../../core/rerank.js";
import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { EngineUnavailableError, InvalidRequestError, ModelLoadError, UpstreamError } from "../../core/errors.js";
import type { ChatRequest, CompletionRequest, GenerationChunk, GenerationOptions, ModelDescriptor, SamplingParams } from "../../core/types.js";
import { findLlamaServer, missingBinaryHelp, type LlamaServerVariant } from "../../native/findLlamaServer.js";
import type { GpuReport } from "../../native/queryGpus.js";
import { resolveGpuLayers, type ResolvedGpuLayers } from "../../native/resolveGpuLayers.js";
import type { RuntimeInfo } from "../Backend.js";
import { ProcessStartError } from "../../supervisor/errors.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { ChildEndpoint } from "../childServer/ChildEndpoint.js";
import { ChildServerBackend } from "../childServer/ChildServerBackend.js";
import { runChoices } from "../generation/runChoices.js";
import { seed32 } from "../generation/seed32.js";
import { bitnetComplete } from "./bitnetCompletion.js";
import { bitnetKernelProblem } from "./bitnetKernelCheck.js";

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
  /**
   * How the daemon reaches the child: a private Unix socket (default; TCP on Windows) or a 127.0.0.1 port, with a
   * per-start key either way.
   */
  transport?: "unix" | "tcp";
  /** The GPU report for `gpuLayers: auto` (tests inject one); default nvidia-smi. */
  gpus?: () => Promise<GpuReport>;
}

/**
 * Sampling for llama-server, every sampler explicit: its own defaults (top_k 40, top_p 0.95, min_p 0.05) are not
 * OpenAI's (no cut-off), so a request that sets none must say so. Its seed is 32 bits (2^32 - 1, or -1, means
 * "random"), so the seed is folded by seed32, as node-llama-cpp's is.
 */
export function llamaServerSampling<R extends GenerationOptions>(request: R): R {
  const s = request.sampling;
  const sampling: SamplingParams = {
    ...s,
    topP: s.topP ?? 1,
    topK: s.topK ?? 0,
    minP: s.minP ?? 0,
    repeatPenalty: s.repeatPenalty ?? 1,
    seed: s.seed === undefined ? undefined : seed32(s.seed),
  };
  return { ...request, sampling };
}

/**
 * Tool choice and JSON mode in the forms llama-server (`--jinja`) honours. It reads `tool_choice` as a string only
 * (an object is logged and treated as "auto"), so a named choice becomes "required" with that tool alone; and it
 * takes `json_object` as the empty schema `{}`, which its chat parser treats as no schema at all (unconstrained
 * text), so `json_object` becomes the schema `{"type":"object"}`.
 */
export function llamaServerToolShape(request: ChatRequest): ChatRequest {
  let out = request;
  const choice = request.toolChoice;
  if (choice.type === "function") {
    out = { ...out, tools: request.tools.filter((t) => t.name === choice.name), toolChoice: { type: "required" } };
  }
  if (request.responseFormat.type === "json_object") {
    out = { ...out, responseFormat: { type: "json_schema", name: "json_object", schema: { type: "object" }, strict: false } };
  }
  return out;
}

/**
 * `parallel_tool_calls: false` for llama-server, which takes the flag but still lets the model write (and its parser
 * return) several calls: only the first call is passed on. A turn cut off by max_tokens while writing a later call
 * has its first call whole, so it finishes as `tool_calls`.
 */
async function* firstCallOnly(chunks: AsyncIterable<GenerationChunk>): AsyncGenerator<GenerationChunk> {
  let dropped = false;
  for await (const c of chunks) {
    if ((c.type === "tool_call" || c.type === "tool_call_arguments") && c.callIndex > 0) {
      dropped = true;
      continue;
    }
    yield c.type === "finish" && dropped && c.reason === "length" ? { ...c, reason: "tool_calls" } : c;
  }
}

/** Arguments the daemon sets itself (each takes a value). */
const RESERVED_FLAGS = new Set(["--host", "--port", "--api-key", "--api-key-file"]);

/**
 * Why BitNet's llama-server refused a model, from its last output: llama.cpp's own load error (a truncated file, a
 * tensor type or a TL1/TL2 kernel shape this build lacks). Only these lines, which describe the file, reach the
 * client; the rest of the child's output stays in the log. Null when the child died of something else.
 */
export function bitnetLoadFailure(lines: readonly string[]): string | null {
  const found: string[] = [];
  for (const line of lines) {
    const error = /error loading model: (.+)$/.exec(line) ?? /(GGML_ASSERT\(.+\) failed)/.exec(line) ?? /(unknown (?:model architecture|tensor type)[^\n]*)/.exec(line);
    if (error && !found.includes(error[1]!.trim())) found.push(error[1]!.trim());
  }
  return found.length > 0 ? found.join("; ") : null;
}

/**
 * A GGUF model in a supervised llama-server child (the standard build, or Microsoft's BitNet build). The child is
 * started on load, stopped on unload, restarted by the supervisor if it dies; requests go through the same
 * OpenAI client as any upstream, so streaming is passed through chunk by chunk.
 *
 * It listens on a Unix socket in a private directory (`--host /dir/child.sock`: llama-server binds AF_UNIX for a
 * host ending in `.sock`) and requires the start's key, which it reads from LLAMA_API_KEY: no TCP port, and nothing
 * secret on its command line.
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

  // n > 1: one llama-server request per choice, all at once (its slots batch them, and it queues what does not
  // fit), rather than its `n` (n_cmpl), which is capped at its slot count.
  override chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return runChoices(request, signal, (choice, s) => {
      const chunks = super.chat(llamaServerToolShape(llamaServerSampling(choice)), s);
      return request.tools.length > 0 && !request.parallelToolCalls ? firstCallOnly(chunks) : chunks;
    });
  }

  override complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    if (this.options.variant === "bitnet") {
      // The fork's /v1/completions is not OpenAI's: its native /completion (see bitnetCompletion.ts).
      const name = this.engineName();
      return runChoices(request, signal, (choice, s) => this.viaChild((endpoint, s2) => bitnetComplete(endpoint, llamaServerSampling(choice), name, s2), s));
    }
    return runChoices(request, signal, (choice, s) => super.complete(llamaServerSampling(choice), s));
  }

  /**
   * llama-server answers a one-label head's raw logit; the daemon answers the probability (sigmoid), as the
   * transformers and node-llama-cpp engines do. Qwen3 rerankers are already a softmax in llama.cpp's graph.
   */
  override async rerank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    const result = await super.rerank(request, signal).catch((err: unknown) => {
      // llama-server refuses a pair over its context with a 500 that names no document; the daemon's answer is the
      // 400 every engine gives for it.
      const tooLarge = err instanceof UpstreamError ? /input \((\d+) tokens\) is (too large|larger than)/.exec(err.message) : null;
      if (!tooLarge) throw err;
      const max = Math.min(this.options.contextSize, this.descriptor.detection.contextLength ?? this.options.contextSize);
      throw new InvalidRequestError(`A document with the query is ${tooLarge[1]} tokens; this model reads at most ${max}.`, {
        param: "documents",
        code: "context_length_exceeded",
      });
    });
    const normalized = ["qwen3", "qwen3vl"].includes(this.descriptor.detection.architecture ?? "");
    return normalized ? result : { ...result, scores: result.scores.map(sigmoid) };
  }

  private engineName(): string {
    return this.options.variant === "bitnet" ? "llama-server-bitnet" : "llama-server";
  }

  /** `--n-gpu-layers` and why: our fit for `auto` where nvidia-smi reports a GPU (set at load). */
  private gpuFit: ResolvedGpuLayers | null = null;

  runtimeInfo(): RuntimeInfo | null {
    if (!this.gpuFit) return null;
    return { gpu_layers: this.gpuFit.gpuLayers, gpu_layers_reason: this.gpuFit.reason, vram_bytes: this.gpuFit.vramBytes };
  }

  private args(endpoint: ChildEndpoint): string[] {
    const { threads, contextSize, parallel, extraArgs = [] } = this.options;
    const gpuLayers = this.gpuFit?.gpuLayers ?? this.options.gpuLayers;
    const d = this.descriptor.detection;
    const ctx = Math.min(contextSize, d.contextLength ?? contextSize);
    const projector = d.files.find((f) => f.role === "projector");
    const modelDir = this.descriptor.path.slice(0, this.descriptor.path.length - (d.files[0]?.path.length ?? 0));
    // BitNet's fork predates --jinja: it renders chat with its built-in templates (--chat-template NAME).
    const bitnet = this.options.variant === "bitnet";
    const templateFlag = bitnet ? [] : ["--jinja"];
    return [
      "--model",
      this.descriptor.path,
      ...(endpoint.socketPath !== null ? ["--host", endpoint.socketPath] : ["--host", "127.0.0.1", "--port", String(endpoint.port)]),
      "--ctx-size",
      String(ctx * parallel),
      "--parallel",
      String(parallel),
      "--threads",
      String(threads),
      ...(gpuLayers === "auto" ? [] : ["--n-gpu-layers", gpuLayers === "max" ? "999" : String(gpuLayers)]),
      ...(this.descriptor.task === "embeddings" ? ["--embeddings"] : this.descriptor.task === "rerank" ? ["--reranking"] : templateFlag),
      ...(projector ? ["--mmproj", `${modelDir}${projector.path}`] : []),
      ...this.ownArgs(bitnet ? extraArgs.filter((a) => a !== "--jinja") : extraArgs),
    ];
  }

  /**
   * The model's extra arguments without those that would undo the private endpoint: where the child listens and
   * which key it requires are the daemon's choice (a `--port` or `--api-key` there would also cut the daemon off).
   */
  private ownArgs(extraArgs: readonly string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < extraArgs.length; i++) {
      const arg = extraArgs[i]!;
      const flag = arg.split("=", 1)[0]!;
      if (!RESERVED_FLAGS.has(flag)) {
        out.push(arg);
        continue;
      }
      if (!arg.includes("=")) i++; // and its value
      this.options.logger.warn({ flag }, "ignoring a llama-server argument: the daemon chooses where the child listens and its key");
    }
    return out;
  }

  async load(signal: AbortSignal): Promise<void> {
    if (!this.binary) {
      const found = await findLlamaServer(this.options.variant, { configPath: this.options.binaryPath, env: this.options.env });
      if (found.path === null) throw new EngineUnavailableError(this.descriptor.id, this.engineName(), missingBinaryHelp(this.options.variant));
      this.binary = found.path;
      this.options.logger.info({ binary: found.path, from: found.source }, "using llama-server binary");
    }
    const binary = this.binary;
    const bitnet = this.options.variant === "bitnet";
    if (bitnet) {
      const problem = await bitnetKernelProblem(binary, this.descriptor.path, signal);
      if (problem !== null) throw new ModelLoadError(this.descriptor.id, `BitNet's llama-server cannot run it: ${problem}`);
    }
    const { contextSize, parallel } = this.options;
    const ctx = Math.min(contextSize, this.descriptor.detection.contextLength ?? contextSize);
    this.gpuFit = await resolveGpuLayers({
      path: this.descriptor.path,
      setting: this.options.gpuLayers,
      kvTokens: ctx * parallel,
      env: this.options.env,
      gpus: this.options.gpus,
      signal,
    });
    this.options.logger.info({ model: this.descriptor.id, gpuLayers: this.gpuFit.gpuLayers, reason: this.gpuFit.reason }, "GPU layers");
    try {
      await this.startChild(
        () => ({
          name: `${this.engineName()}:${this.descriptor.id}`,
          // The key in the environment, where only the daemon's user (through /proc) can read it; never in argv.
          command: (endpoint) => ({ file: binary, args: this.args(endpoint), env: { LLAMA_API_KEY: endpoint.key } }),
          logger: this.options.logger,
          clock: this.options.clock,
          registry: this.options.processes,
          startTimeoutMs: this.options.startTimeoutMs ?? 120_000,
        }),
        {
          name: this.engineName(),
          logger: this.options.logger,
          stallTimeoutMs: this.options.stallTimeoutMs ?? 300_000,
          // The fork's HTTP server binds TCP only (no Unix sockets): 127.0.0.1 on a free port, with the start's key;
          // a connection per request, since it leaves Nagle on (see ChildEndpoint.create).
          transport: this.options.transport ?? (bitnet ? "tcp" : undefined),
          keepAlive: !bitnet,
        },
        signal,
      );
    } catch (err) {
      const reason = bitnet && err instanceof ProcessStartError ? bitnetLoadFailure(err.lastLines) : null;
      if (reason === null) throw err;
      throw new ModelLoadError(this.descriptor.id, `BitNet's llama-server cannot load it: ${reason}`, err);
    }
  }
}
