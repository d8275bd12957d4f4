import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { ContextLengthExceededError, InvalidRequestError, ModelLoadError, ModelNotLoadedError } from "../../core/errors.js";
import {
  REPEAT_PENALTY_WINDOW,
  type ChatRequest,
  type CompletionRequest,
  type EmbedRequest,
  type EmbedResult,
  type GenerationChunk,
  type GenerationOptions,
  type ModelDescriptor,
  type SamplingParams,
} from "../../core/types.js";
import { openFileByteSource } from "../../detection/gguf/ByteSource.js";
import { LocalModelFileSystem } from "../../detection/ModelFileSystem.js";
import { InvalidOnnxError, readOnnxSummary } from "../../detection/onnx/readOnnxSummary.js";
import { readSentenceTransformersInfo } from "../../detection/transformers/readSentenceTransformersInfo.js";
import type { Backend, RuntimeInfo } from "../Backend.js";
import { ChatTemplate, readFolderChatTemplate, type TemplateOwner } from "../generation/ChatTemplate.js";
import { checkTokenIds, inputParam } from "../generation/embedInputs.js";
import { generateFromTokens } from "../generation/generateFromTokens.js";
import { logprobsFromLogits, type StepLogprobs } from "../generation/logprobs.js";
import { runChoices } from "../generation/runChoices.js";
import { requestMatcher, type JsonSchemaMatcher } from "../generation/JsonSchemaMatcher.js";
import { TokenConstraint, TokenMask } from "../generation/TokenMask.js";
import { messagesWithTools, templateReadsTools, toolMode, toolsForTemplate, withToolCalls } from "../generation/toolCalls.js";
import type { OnnxProviderName } from "./chooseExecutionProviders.js";
import { createOnnxSession } from "./createOnnxSession.js";
import type { OnnxRunner } from "./OnnxWorkerSession.js";
import { createRandom } from "./createRandom.js";
import { describeDecoderGraph } from "./describeDecoderGraph.js";
import { locateOnnxModel } from "./locateOnnxModel.js";
import { OnnxDecoder } from "./OnnxDecoder.js";
import { OnnxEmbedder } from "./OnnxEmbedder.js";
import { OnnxTokenizer } from "./OnnxTokenizer.js";
import type { PoolingMode } from "./poolTokens.js";
import { resolveExternalData } from "./resolveExternalData.js";
import { sampleToken } from "./sampleToken.js";

export interface OnnxBackendOptions {
  logger: Logger;
  /** Intra-op threads per session. */
  threads: number;
  /** Tokens per request (prompt + answer), capped by the model's trained context. */
  contextSize: number;
  parallel: number;
  /** Execution providers in order of preference; CPU is always the fallback. */
  providers: readonly OnnxProviderName[];
  /** A Jinja chat template used instead of the folder's (config `chatTemplate`). */
  chatTemplate?: string;
}

interface LoadedCommon {
  session: OnnxRunner;
  tokenizer: OnnxTokenizer;
  provider: OnnxProviderName;
}

interface LoadedDecoder extends LoadedCommon {
  kind: "decoder";
  decoder: OnnxDecoder;
  template: ChatTemplate | null;
  /** The template renders `tools` itself; otherwise tools go in a system message (see toolCalls.ts). */
  templateReadsTools: boolean;
  /** The vocabulary's trie for constrained decoding, built at the first request with a schema. */
  vocabulary: TokenMask | null;
  contextSize: number;
}

interface LoadedEmbedder extends LoadedCommon {
  kind: "embedder";
  embedder: OnnxEmbedder;
  maxTokens: number;
}

type Loaded = LoadedDecoder | LoadedEmbedder;

/** Graph structure read to find external data; generous, since a load already trusts the file's size. */
const SUMMARY_LIMITS = { maxReadBytes: 256 << 20, maxFields: 20_000_000 };
const POOLING_MODES = new Set(["mean", "cls", "max", "lasttoken", "mean_sqrt_len", "weightedmean"]);

/**
 * ONNX models in this process through onnxruntime-node: text generation with a KV cache for decoder exports
 * (optimum, transformers.js, onnxruntime-genai names) and embeddings for encoder exports. Each request has its own
 * cache, so concurrent requests interleave step by step on the one session.
 */
export class OnnxBackend implements Backend {
  readonly parallel: number;
  private loaded: Loaded | null = null;
  private runtime: RuntimeInfo | null = null;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly options: OnnxBackendOptions,
  ) {
    this.parallel = options.parallel;
  }

  runtimeInfo(): RuntimeInfo | null {
    return this.runtime;
  }

  /** The execution provider in use (null until loaded). */
  get provider(): OnnxProviderName | null {
    return this.loaded?.provider ?? null;
  }

  async load(signal: AbortSignal): Promise<void> {
    if (this.loaded) return;
    const { id, task } = this.descriptor;
    if (task !== "chat" && task !== "text-generation" && task !== "embeddings") {
      throw new ModelLoadError(id, `the ONNX engine serves text generation and embeddings, not ${task} models`);
    }
    let session: OnnxRunner | null = null;
    try {
      const where = await locateOnnxModel(this.descriptor);
      const graphPath = join(where.root, ...where.graph.split("/"));
      // External data is checked before ONNX Runtime opens anything: it would follow any path the graph names.
      const source = await openFileByteSource(graphPath);
      let locations: string[];
      try {
        const summary = await readOnnxSummary(source, { ...SUMMARY_LIMITS, signal });
        locations = summary.externalData.map((e) => e.location);
      } finally {
        await source.close();
      }
      await resolveExternalData(where.root, where.graph, locations);
      signal.throwIfAborted();

      const tokenizer = await OnnxTokenizer.load(where.configDir);
      const opened = await createOnnxSession(graphPath, {
        threads: this.options.threads,
        providers: this.options.providers,
        device: this.descriptor.engineOptions?.device,
        logger: this.options.logger,
      });
      session = opened.session;
      const { ort, provider, notes } = opened;
      signal.throwIfAborted();

      if (task === "embeddings") {
        const info = await this.sentenceTransformers(where.configDir);
        const padText = tokenizer.specialToken("pad_token");
        const padId = (padText === null ? undefined : tokenizer.tokenId(padText)) ?? 0;
        const embedder = new OnnxEmbedder(ort, session, { pooling: info.pooling, normalize: info.normalize, padId });
        const maxTokens = info.maxSeqLength ?? this.descriptor.detection.contextLength ?? 512;
        this.loaded = { kind: "embedder", session, tokenizer, provider, embedder, maxTokens };
      } else {
        const config = await readJsonObject(join(where.configDir, "config.json"));
        const heads = positiveInt(config?.["num_key_value_heads"]) ?? positiveInt(config?.["num_attention_heads"]);
        const hidden = positiveInt(config?.["hidden_size"]);
        const attentionHeads = positiveInt(config?.["num_attention_heads"]);
        const headDim = positiveInt(config?.["head_dim"]) ?? (hidden && attentionHeads ? hidden / attentionHeads : null);
        const inputs = session.inputMetadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name }));
        const outputs = session.outputMetadata.map((m) => ({ name: m.name }));
        const graph = describeDecoderGraph(inputs, outputs, { heads, headDim }, where.names);
        if (graph.cache.length === 0) this.options.logger.warn("this ONNX graph has no KV-cache inputs: every token re-evaluates the whole sequence");
        const template = await ChatTemplate.load(where.configDir, tokenizer.config, this.templateOwner(), this.options.chatTemplate);
        const source = template ? (this.options.chatTemplate ?? (await readFolderChatTemplate(where.configDir, tokenizer.config))) : null;
        const trained = this.descriptor.detection.contextLength;
        const contextSize = Math.min(this.options.contextSize, trained ?? this.options.contextSize);
        this.loaded = {
          kind: "decoder",
          session,
          tokenizer,
          provider,
          decoder: new OnnxDecoder(ort, session, graph),
          template,
          contextSize,
          templateReadsTools: source !== null && templateReadsTools(source),
          vocabulary: null,
        };
      }
      this.runtime = { engine: "onnxruntime", execution_provider: provider, ...(notes.length ? { notes } : {}) };
      this.options.logger.info({ provider, layout: where.layout, graph: where.graph, threads: this.options.threads }, "ONNX model loaded");
    } catch (err) {
      await session?.release().catch(() => undefined);
      if (signal.aborted) throw err;
      const reason = err instanceof InvalidOnnxError ? `the graph file is not valid ONNX (${err.message})` : (err as Error).message;
      throw new ModelLoadError(id, reason, err);
    }
  }

  async unload(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    this.runtime = null;
    if (loaded?.kind === "decoder") await loaded.template?.close();
    if (loaded) await loaded.session.release();
  }

  private templateOwner(): TemplateOwner {
    return { modelId: this.descriptor.id, onUnusable: (reason) => (this.descriptor.chatTemplateProblem = reason) };
  }

  private async sentenceTransformers(dir: string): Promise<{ pooling: PoolingMode; normalize: boolean; maxSeqLength: number | null }> {
    const fs = await LocalModelFileSystem.create(dir);
    const present = new Set((await fs.list()).map((f) => f.path));
    const warnings: string[] = [];
    const info = await readSentenceTransformersInfo(fs, present, warnings);
    for (const w of warnings) this.options.logger.warn(w);
    // Without a sentence-transformers config: mean pooling, unit length (what OpenAI's embeddings are).
    if (!info) return { pooling: "mean", normalize: true, maxSeqLength: null };
    const pooling = info.pooling && POOLING_MODES.has(info.pooling) ? (info.pooling as PoolingMode) : "mean";
    return { pooling, normalize: info.normalize, maxSeqLength: info.maxSeqLength };
  }

  private require(kind: "decoder"): LoadedDecoder;
  private require(kind: "embedder"): LoadedEmbedder;
  private require(kind: Loaded["kind"]): Loaded {
    const loaded = this.loaded;
    if (!loaded) throw new ModelNotLoadedError(this.descriptor.id);
    if (loaded.kind !== kind) {
      throw new InvalidRequestError(`Model '${this.descriptor.id}' is ${loaded.kind === "embedder" ? "an embedding" : "a text generation"} model.`, { param: "model" });
    }
    return loaded;
  }

  async *chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require("decoder");
    if (!loaded.template) throw new InvalidRequestError(`The model '${this.descriptor.id}' has no chat template; use /v1/completions.`, { param: "model" });
    const mode = toolMode(request);
    // A template that reads `tools` gets them and the raw tool history; any other gets both written into messages.
    const prompt = loaded.templateReadsTools
      ? await loaded.template.render(request.messages, mode === "none" ? undefined : toolsForTemplate(request.tools))
      : await loaded.template.render(messagesWithTools(request.messages, request.tools, mode));
    const tokens = loaded.tokenizer.encode(prompt, false);
    // A forced call, json_schema and json_object are generated under a schema (see TokenMask).
    const matcher = requestMatcher(request, mode, "onnxruntime");
    // n > 1: the choices step concurrently, each with its own KV cache (and its own calls).
    yield* runChoices(request, signal, (choice, s) =>
      withToolCalls(this.generate(loaded, tokens, choice, "messages", s, matcher), mode, request.tools, request.parallelToolCalls),
    );
  }

  async *complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require("decoder");
    const tokens = loaded.tokenizer.encode(request.prompt, true);
    yield* runChoices(request, signal, (choice, s) => this.generate(loaded, tokens, choice, "prompt", s));
  }

  async embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    const loaded = this.require("embedder");
    const batch = request.input.map((input, i) => {
      // Token ids go to the encoder as given (no CLS/SEP added): the caller tokenized already.
      if (typeof input !== "string") checkTokenIds(request, i, input, loaded.tokenizer.vocabSize);
      const ids = typeof input === "string" ? loaded.tokenizer.encode(input, true) : input;
      if (ids.length > loaded.maxTokens) throw new ContextLengthExceededError(ids.length, loaded.maxTokens, inputParam(request, i));
      return ids;
    });
    signal.throwIfAborted();
    const vectors = await loaded.embedder.embed(batch);
    signal.throwIfAborted();
    return { vectors, promptTokens: batch.reduce((s, ids) => s + ids.length, 0) };
  }

  private async *generate(
    loaded: LoadedDecoder,
    promptTokens: number[],
    request: GenerationOptions,
    promptParam: string,
    signal: AbortSignal,
    matcher: JsonSchemaMatcher | null = null,
  ): AsyncGenerator<GenerationChunk> {
    const { sampling, returnTokenIds } = request;
    const { contextSize, decoder, tokenizer } = loaded;
    if (promptTokens.length === 0) throw new InvalidRequestError("The prompt is empty after tokenization.", { param: promptParam });
    if (promptTokens.length >= contextSize) throw new ContextLengthExceededError(promptTokens.length, contextSize, promptParam);
    const room = contextSize - promptTokens.length;
    const maxTokens = Math.min(sampling.maxTokens ?? room, room);

    // logprobs: computed from each step's logits before the sampler sees them.
    const top = request.logprobs;
    let last: StepLogprobs | null = null;
    const record = top === null ? undefined : (logits: ArrayLike<number>, token: number) => (last = logprobsFromLogits(logits, token, top));
    const constraint = matcher ? new TokenConstraint(matcher, (loaded.vocabulary ??= TokenMask.build(tokenizer.pieces(), tokenizer.eosIds))) : undefined;
    yield* generateFromTokens(sampledTokens(decoder, promptTokens, sampling, signal, record, constraint), {
      index: 0,
      promptTokens,
      maxTokens,
      stop: sampling.stop,
      returnTokenIds,
      isEnd: (token) => token === CONSTRAINT_END || tokenizer.eosIds.has(token),
      detokenize: (tokens, last) => tokenizer.decodeAfter(tokens, last),
      toId: (token) => token,
      logprobs: top === null ? undefined : { top, step: () => last!, fromId: (id) => id },
      signal,
    });
  }
}

/** Not a token: the end of the answer under a constraint (the document is complete), a `stop`. */
const CONSTRAINT_END = -1;

/**
 * Tokens sampled from the decoder, one per request for the next: the KV cache lives in the session's worker, and the
 * step for the next token runs there while this thread writes the one just yielded. Under a `constraint` each step's
 * logits are masked to the tokens it allows, and CONSTRAINT_END comes once it is done.
 */
async function* sampledTokens(
  decoder: OnnxDecoder,
  promptTokens: number[],
  sampling: SamplingParams,
  signal: AbortSignal,
  record?: (logits: ArrayLike<number>, token: number) => void,
  constraint?: TokenConstraint,
): AsyncGenerator<number> {
  const state = decoder.start();
  const random = createRandom(sampling.seed);
  const counts = new Map<number, number>(); // for presence and frequency penalties
  // The repeat penalty's window: the last tokens of the prompt and the answer (only kept when it is on).
  const window = sampling.repeatPenalty !== undefined && sampling.repeatPenalty !== 1 ? promptTokens.slice(-REPEAT_PENALTY_WINDOW) : null;
  try {
    let logits = await decoder.step(state, promptTokens);
    for (;;) {
      const row = constraint ? constraint.mask(logits) : logits;
      if (row === null) {
        yield CONSTRAINT_END;
        return;
      }
      const token = sampleToken(row, sampling, random, counts, window ? new Set(window) : undefined);
      record?.(logits, token);
      yield token;
      constraint?.advance(token);
      counts.set(token, (counts.get(token) ?? 0) + 1);
      if (window) {
        window.push(token);
        if (window.length > REPEAT_PENALTY_WINDOW) window.shift();
      }
      if (signal.aborted) return;
      if (constraint?.done) {
        yield CONSTRAINT_END; // no step for a token that cannot follow
        return;
      }
      logits = await decoder.step(state, [token]);
    }
  } finally {
    decoder.release(state);
  }
}

function positiveInt(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v > 0 ? v : null;
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | null> {
  try {
    const v: unknown = JSON.parse(await readFile(path, "utf8"));
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
