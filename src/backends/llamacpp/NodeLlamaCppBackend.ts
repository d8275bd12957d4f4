import type { Llama, LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaGrammar, LlamaModel, Token } from "node-llama-cpp";
import { basename } from "node:path";
import type { Logger } from "pino";
import { ContextLengthExceededError, InvalidRequestError, ModelLoadError, ModelNotLoadedError, UnsupportedParameterError } from "../../core/errors.js";
import {
  REPEAT_PENALTY_WINDOW,
  type ChatMessage,
  type ChatRequest,
  type CompletionRequest,
  type EmbedRequest,
  type EmbedResult,
  type GenerationChunk,
  type GenerationOptions,
  type ModelDescriptor,
  type SamplingParams,
} from "../../core/types.js";
import type { Backend, RuntimeInfo } from "../Backend.js";
import { ChatTemplate } from "../generation/ChatTemplate.js";
import { checkTokenIds, inputParam } from "../generation/embedInputs.js";
import { generateFromTokens } from "../generation/generateFromTokens.js";
import { logprobsFromProbabilities, type StepLogprobs } from "../generation/logprobs.js";
import { runChoices } from "../generation/runChoices.js";
import { SequencePool } from "./SequencePool.js";
import { GgufRanker } from "./GgufRanker.js";
import type { RerankRequest, RerankResult } from "../../core/rerank.js";
import { forcedCallSchema, messagesWithTools, templateReadsTools, toolMode, toolsForTemplate, withToolCalls, type ToolMode } from "../generation/toolCalls.js";
import { toGrammarSchema } from "./jsonSchemaGrammar.js";
import { seed32 } from "../generation/seed32.js";
import type { GgufProbe } from "./GgufProbe.js";
import type { LlamaProvider } from "./LlamaProvider.js";
import { resolveGpuLayers, type ResolvedGpuLayers } from "../../native/resolveGpuLayers.js";
import type { GpuReport } from "../../native/queryGpus.js";

export interface NodeLlamaCppBackendOptions {
  provider: LlamaProvider;
  logger: Logger;
  threads: number;
  contextSize: number;
  parallel: number;
  gpuLayers: "auto" | "max" | number;
  /** A Jinja chat template used instead of the one in the GGUF (config `chatTemplate`). */
  chatTemplate?: string;
  /** Opens the file's vocabulary in a child process first, so a file that would abort llama.cpp is refused instead. */
  probe?: GgufProbe;
  /** The GPU report for `gpuLayers: auto` (tests inject one); default nvidia-smi. */
  gpus?: () => Promise<GpuReport>;
}

interface Loaded {
  model: LlamaModel;
  context: LlamaContext | null;
  embedding: LlamaEmbeddingContext | null;
  /** The chat template (config override, else the GGUF's); null for models that only complete text. */
  template: ChatTemplate | null;
  /** The template renders `tools` itself; otherwise tools go in a system message (see toolCalls.ts). */
  templateReadsTools: boolean;
  /** Tokens the chat template uses to end a turn, beyond the model's own end-of-generation tokens. */
  stopTokens: Set<Token>;
  /** The context's sequences, one per generating choice (empty for an embedding model). */
  sequences: SequencePool<LlamaContextSequence>;
  /**
   * KV-cache edits of requests that are starting. They need node-llama-cpp's context lock, which its decode loop
   * holds for as long as any sequence keeps asking for tokens: running generations pause between tokens until
   * these are done, or a new request would wait for every running one to finish.
   */
  pendingPrefixWork: Set<Promise<void>>;
  contextSize: number;
}

/** Compiled grammars kept per model (a schema's grammar takes milliseconds to build; an agent sends the same one). */
const MAX_CACHED_GRAMMARS = 32;
/** node-llama-cpp's JSON grammars end in four newlines (then EOG): a stop sequence keeps them out of the answer. */
const GRAMMAR_END = "\n\n\n\n";

/**
 * node-llama-cpp's grammar for a JSON Schema, with its number rules tightened: it lets an "integer" take an exponent
 * (`1e-5`, `9e999999`) and a "number" an exponent of up to 16 digits (Infinity once parsed), which would break the
 * promise that the output validates. Integers get no exponent and at most 15 digits (safe integers), other numbers an exponent of at most two digits.
 */
async function jsonSchemaGrammar(llama: Llama, schema: Record<string, unknown>): Promise<LlamaGrammar> {
  const built = await llama.createGrammarForJsonSchema(schema as never);
  const text = built.grammar
    .replace(/^integer-number-rule ::= .*$/m, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,14})')
    .replace(/\(\[eE\] \[-\+\]\? \("0" \| \[1-9\] \[0-9\]\{0,15\}\)\)\?/g, "([eE] [-+]? [0-9]{1,2})?");
  return llama.createGrammar({ grammar: text });
}

/** GGUF models in this process through node-llama-cpp: chat, completions and embeddings. */
export class NodeLlamaCppBackend implements Backend {
  readonly parallel: number;
  private loaded: Loaded | null = null;
  private gpuFit: ResolvedGpuLayers | null = null;
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private ranker: GgufRanker | null = null;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly options: NodeLlamaCppBackendOptions,
  ) {
    // An embedding context evaluates one input at a time.
    this.parallel = descriptor.task === "embeddings" || descriptor.task === "rerank" ? 1 : options.parallel;
  }

  async load(signal: AbortSignal): Promise<void> {
    if (this.loaded) return;
    const { provider, threads, gpuLayers } = this.options;
    let llama;
    try {
      llama = await provider.get();
    } catch (err) {
      throw new ModelLoadError(this.descriptor.id, `the llama.cpp runtime could not start: ${(err as Error).message}`, err);
    }
    const verdict = await this.options.probe?.check(this.descriptor.path, signal);
    if (verdict && !verdict.ok) throw new ModelLoadError(this.descriptor.id, `the file cannot be opened safely: ${verdict.reason}`);
    // Our fit only where the runtime is CUDA (what nvidia-smi measures); Metal and Vulkan keep node-llama-cpp's own.
    this.gpuFit =
      llama.gpu === "cuda"
        ? await resolveGpuLayers({
            path: this.descriptor.path,
            setting: gpuLayers,
            kvTokens: this.options.contextSize * this.parallel,
            env: process.env,
            gpus: this.options.gpus,
            signal,
          })
        : { gpuLayers, reason: gpuLayers === "auto" ? `auto: left to node-llama-cpp (its runtime: ${llama.gpu || "CPU"})` : `configured: ${gpuLayers}`, vramBytes: null };
    this.options.logger.info({ model: this.descriptor.id, gpuLayers: this.gpuFit.gpuLayers, reason: this.gpuFit.reason }, "GPU layers");
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: this.descriptor.path, gpuLayers: this.gpuFit.gpuLayers, loadSignal: signal });
    } catch (err) {
      throw new ModelLoadError(this.descriptor.id, (err as Error).message, err);
    }
    try {
      const contextSize = Math.min(this.options.contextSize, model.trainContextSize || this.options.contextSize);
      if (this.descriptor.task === "embeddings" || this.descriptor.task === "rerank") {
        const rerank = this.descriptor.task === "rerank";
        this.ranker = rerank ? await GgufRanker.create(model, { contextSize, threads, signal }) : null;
        const embedding = rerank ? null : await model.createEmbeddingContext({ contextSize, threads });
        this.loaded = {
          model,
          context: null,
          embedding,
          template: null,
          templateReadsTools: false,
          stopTokens: new Set(),
          sequences: new SequencePool<LlamaContextSequence>(() => null),
          pendingPrefixWork: new Set(),
          contextSize,
        };
        return;
      }
      const context = await model.createContext({
        contextSize,
        sequences: this.parallel,
        threads,
        createSignal: signal,
      });
      let template: ChatTemplate | null = null;
      const stopTokens = new Set<Token>();
      const source = this.options.chatTemplate ?? ggufChatTemplate(model);
      if (this.descriptor.task === "chat" && source !== null) {
        template = await ChatTemplate.compile(
          source,
          { bos_token: model.tokens.bosString ?? "", eos_token: model.tokens.eosString ?? "" },
          {
            modelId: this.descriptor.id,
            onUnusable: (reason) => (this.descriptor.chatTemplateProblem = reason),
          },
        );
        // node-llama-cpp's reading of the template knows which tokens end a turn (<|im_end|>, <|eot_id|>, ...). It
        // renders the template, so it runs in the template's sandbox; the triggers come back as LlamaText JSON.
        const triggers = await template.stopTriggers(
          this.options.chatTemplate
            ? { override: source }
            : { bosString: model.tokens.bosString ?? null, filename: basename(this.descriptor.path), metadata: smallMetadata(model.fileInfo.metadata) },
        );
        const { LlamaText } = await import("node-llama-cpp");
        for (const json of triggers) {
          const tokens = LlamaText.fromJSON(json as Parameters<typeof LlamaText.fromJSON>[0]).tokenize(model.tokenizer);
          if (tokens.length === 1) stopTokens.add(tokens[0]!);
        }
      }
      this.loaded = {
        model,
        context,
        embedding: null,
        template,
        templateReadsTools: source !== null && templateReadsTools(source),
        stopTokens,
        sequences: new SequencePool(() => (context.sequencesLeft > 0 ? context.getSequence() : null)),
        pendingPrefixWork: new Set(),
        contextSize: context.contextSize,
      };
    } catch (err) {
      await model.dispose();
      throw new ModelLoadError(this.descriptor.id, (err as Error).message, err);
    }
  }

  runtimeInfo(): RuntimeInfo | null {
    if (!this.loaded || !this.gpuFit) return null;
    return { gpu_layers: this.gpuFit.gpuLayers, gpu_layers_reason: this.gpuFit.reason, vram_bytes: this.gpuFit.vramBytes };
  }

  async unload(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (!loaded) return;
    await loaded.template?.close();
    await loaded.embedding?.dispose();
    await this.ranker?.dispose();
    this.ranker = null;
    await loaded.context?.dispose();
    await loaded.model.dispose();
  }

  private require(): Loaded {
    if (!this.loaded) throw new ModelNotLoadedError(this.descriptor.id);
    return this.loaded;
  }

  async *chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require();
    const mode = toolMode(request);
    // A template that reads `tools` gets them and the raw tool history; any other gets both written into messages.
    const tokens = loaded.templateReadsTools
      ? await this.renderChat(loaded, request.messages, mode === "none" ? undefined : toolsForTemplate(request.tools))
      : await this.renderChat(loaded, messagesWithTools(request.messages, request.tools, mode));
    const grammar = await this.grammarFor(request, mode);
    refuseLogprobSamplers(request);
    // n > 1: each choice on its own sequence, evaluated in the same batches (see SequencePool for n > parallel).
    yield* runChoices(request, signal, (choice, s) => {
      const sampling = grammar ? { ...choice.sampling, stop: [...choice.sampling.stop, GRAMMAR_END] } : choice.sampling;
      const chunks = this.generate(loaded, tokens, sampling, 0, "messages", s, choice.returnTokenIds, grammar, choice.logprobs);
      return withToolCalls(chunks, mode, request.tools, request.parallelToolCalls);
    });
  }

  /**
   * The grammar a request's output must follow: one call's JSON for a forced tool call, the schema of a json_schema
   * response, any JSON object for json_object; null for free text. Compiled grammars are kept per schema.
   */
  private async grammarFor(request: ChatRequest, mode: ToolMode): Promise<LlamaGrammar | null> {
    const format = request.responseFormat;
    let key: string;
    let build: (llama: Llama) => Promise<LlamaGrammar>;
    // `as never`: the builder's parameter type is inferred from a literal schema; this one is checked by toGrammarSchema.
    if (mode === "forced") {
      const schema = toGrammarSchema(forcedCallSchema(request), "tools");
      key = JSON.stringify(schema);
      build = (llama) => jsonSchemaGrammar(llama, schema);
    } else if (format.type === "json_schema") {
      const schema = toGrammarSchema(format.schema, "response_format.json_schema.schema");
      key = JSON.stringify(schema);
      build = (llama) => jsonSchemaGrammar(llama, schema);
    } else if (format.type === "json_object") {
      key = "json_object";
      build = (llama) => llama.getGrammarFor("json");
    } else return null;
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = this.options.provider.get().then(build);
      // A schema the grammar builder rejects fails this request only, and is not kept.
      grammar.catch(() => this.grammars.delete(key));
      this.grammars.set(key, grammar);
      if (this.grammars.size > MAX_CACHED_GRAMMARS) this.grammars.delete(this.grammars.keys().next().value!);
    }
    try {
      return await grammar;
    } catch (err) {
      throw new InvalidRequestError(`The schema could not be compiled into a grammar: ${(err as Error).message}`, {
        param: mode === "forced" ? "tools" : "response_format",
        code: "invalid_schema",
      });
    }
  }

  async *complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require();
    const { model } = loaded;
    const tokens = withBos(model, model.tokenize(request.prompt, false));
    refuseLogprobSamplers(request);
    yield* runChoices(request, signal, (choice, s) => this.generate(loaded, tokens, choice.sampling, 0, "prompt", s, choice.returnTokenIds, null, choice.logprobs));
  }

  async rerank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    this.require();
    if (!this.ranker) throw new InvalidRequestError(`Model '${this.descriptor.id}' is not a reranker.`, { param: "model" });
    return this.ranker.rank(request, signal);
  }

  async embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    const loaded = this.require();
    if (!loaded.embedding) throw new InvalidRequestError(`Model '${this.descriptor.id}' does not produce embeddings.`, { param: "model" });
    const vectors: number[][] = [];
    let promptTokens = 0;
    for (const [i, input] of request.input.entries()) {
      signal.throwIfAborted();
      if (typeof input !== "string") checkTokenIds(request, i, input, vocabularySize(loaded.model));
      // Token ids are embedded as given (no BOS or separator added): the caller tokenized already.
      const tokens = typeof input === "string" ? loaded.model.tokenize(input) : (input as Token[]);
      if (tokens.length > loaded.contextSize) {
        throw new ContextLengthExceededError(tokens.length, loaded.contextSize, inputParam(request, i));
      }
      promptTokens += tokens.length;
      const { vector } = await loaded.embedding.getEmbeddingFor(tokens);
      vectors.push(l2Normalize(vector));
    }
    return { vectors, promptTokens };
  }

  private async renderChat(loaded: Loaded, messages: ChatMessage[], tools?: object[]): Promise<Token[]> {
    if (!loaded.template) throw new InvalidRequestError(`The model '${this.descriptor.id}' has no chat template; use /v1/completions.`, { param: "model" });
    const text = await loaded.template.render(messages, tools);
    // One string with its special tokens parsed, plus BOS where the vocabulary asks for it: what llama-server and
    // transformers do with a rendered prompt, so one model gets the same ids whichever engine serves it.
    return withBos(loaded.model, loaded.model.tokenize(text, true));
  }

  private async *generate(
    loaded: Loaded,
    promptTokens: Token[],
    sampling: SamplingParams,
    index: number,
    promptParam: string,
    signal: AbortSignal,
    returnTokenIds = false,
    grammar: LlamaGrammar | null = null,
    logprobs: number | null = null,
  ): AsyncGenerator<GenerationChunk> {
    const { model, contextSize } = loaded;
    if (promptTokens.length >= contextSize) throw new ContextLengthExceededError(promptTokens.length, contextSize, promptParam);
    const room = contextSize - promptTokens.length;
    const maxTokens = Math.min(sampling.maxTokens ?? room, room);

    const sequence = await loaded.sequences.take(signal);
    try {
      const work = reusePrefix(sequence, promptTokens);
      const settled = work.then(
        () => undefined,
        () => undefined,
      );
      loaded.pendingPrefixWork.add(settled);
      void settled.then(() => loaded.pendingPrefixWork.delete(settled));
      const toEvaluate = await work;
      signal.throwIfAborted();
      // Grammar state is per generation: it tracks where in the grammar this answer is.
      const grammarState = grammar ? new (await import("node-llama-cpp")).LlamaGrammarEvaluationState({ model, grammar }) : undefined;
      const repeatPenalty = sampling.repeatPenalty ?? 1;
      const penalize = sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0 || repeatPenalty !== 1;
      const generated: Token[] = [];
      // One llama.cpp penalty sampler does all three: with repeat_penalty its window is the prompt's and the
      // answer's last tokens (as llama.cpp's server does), otherwise the answer's alone (OpenAI's penalties).
      const punishTokens =
        repeatPenalty !== 1
          ? () => [...promptTokens.slice(-REPEAT_PENALTY_WINDOW), ...generated].slice(-REPEAT_PENALTY_WINDOW)
          : () => generated.slice(-REPEAT_PENALTY_WINDOW);
      const options: Parameters<LlamaContextSequence["evaluate"]>[1] = {
        // We want to see the end-of-generation token: without it an ended iterator looks like a length stop.
        yieldEogToken: true,
        grammarEvaluationState: grammarState,
        temperature: sampling.temperature,
        // Always explicit: node-llama-cpp's own defaults (top_k 40, top_p 0.95) are not OpenAI's (no cut-off).
        topP: sampling.topP ?? 1,
        topK: sampling.topK ?? 0,
        minP: sampling.minP ?? 0,
        // Without one node-llama-cpp would seed from the current second; the API always gives one.
        seed: seed32(sampling.seed ?? Math.floor(Math.random() * 0x1_0000_0000)),
        repeatPenalty: penalize
          ? {
              punishTokens,
              maxPunishTokens: REPEAT_PENALTY_WINDOW,
              penalty: repeatPenalty,
              presencePenalty: sampling.presencePenalty,
              frequencyPenalty: sampling.frequencyPenalty,
            }
          : undefined,
      };
      // logprobs: node-llama-cpp's probabilities are those after its sampler chain, which (refuseLogprobSamplers)
      // is at most a temperature here; logprobsFromProbabilities takes it back out.
      let last: StepLogprobs | null = null;
      const evaluation =
        logprobs === null
          ? sequence.evaluate(toEvaluate, options)
          : (async function* () {
              for await (const { token, probabilities } of sequence.evaluateWithMetadata(toEvaluate, { probabilities: true }, options)) {
                last = logprobsFromProbabilities(probabilities, token, logprobs, sampling.temperature);
                yield token;
              }
            })();
      async function* tokens(): AsyncGenerator<Token> {
        for await (const token of evaluation) {
          // KV-cache edits of starting requests go first (see Loaded.pendingPrefixWork).
          if (loaded.pendingPrefixWork.size > 0) await Promise.all(loaded.pendingPrefixWork);
          generated.push(token);
          yield token;
        }
      }
      yield* generateFromTokens<Token>(tokens(), {
        index,
        promptTokens,
        maxTokens,
        stop: sampling.stop,
        returnTokenIds,
        isEnd: (token) => model.isEogToken(token) || loaded.stopTokens.has(token),
        detokenize: (t, last) => model.detokenize(t, false, last),
        toId: Number,
        logprobs: logprobs === null ? undefined : { top: logprobs, step: () => last!, fromId: (id) => id as Token },
        signal,
      });
    } finally {
      loaded.sequences.give(sequence);
    }
  }
}

/**
 * node-llama-cpp reports token probabilities after its sampler chain. With logprobs on, a sampler that changes the
 * distribution beyond the temperature (which is taken back out) would change the values, so it is refused by name.
 */
function refuseLogprobSamplers(request: GenerationOptions): void {
  if (request.logprobs === null) return;
  const s = request.sampling;
  const changed: [string, boolean][] = [
    ["top_p", s.topP !== undefined && s.topP < 1],
    ["top_k", (s.topK ?? 0) > 0],
    ["min_p", (s.minP ?? 0) > 0],
    ["presence_penalty", s.presencePenalty !== 0],
    ["frequency_penalty", s.frequencyPenalty !== 0],
    ["repeat_penalty", (s.repeatPenalty ?? 1) !== 1],
  ];
  const param = changed.find(([, on]) => on)?.[0];
  if (param) {
    throw new UnsupportedParameterError(
      param,
      "cannot be combined with logprobs on the node-llama-cpp engine, which reports probabilities after its samplers (engines that can: onnxruntime, llama-server, transformers, upstream)",
    );
  }
}

/** Prompts start with BOS when the model asks for it, as llama.cpp's own server tokenizes them. */
function ggufChatTemplate(model: LlamaModel): string | null {
  const template = (model.fileInfo.metadata as { tokenizer?: { chat_template?: unknown } }).tokenizer?.chat_template;
  return typeof template === "string" ? template : null;
}

/** The GGUF metadata node-llama-cpp picks a chat wrapper from, without the vocabulary's long arrays. */
function smallMetadata(metadata: unknown): Record<string, unknown> {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.length > 256 ? [] : value;
    if (value === null || typeof value !== "object") return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
  };
  return strip(metadata) as Record<string, unknown>;
}

/** The vocabulary's size, from the GGUF's token list (node-llama-cpp does not expose llama_vocab_n_tokens). */
function vocabularySize(model: LlamaModel): number {
  const tokens = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : Number.MAX_SAFE_INTEGER;
}

function withBos(model: LlamaModel, tokens: Token[]): Token[] {
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

/**
 * Keeps the KV cache for the part of the prompt this sequence has already evaluated (multi-turn chat reuses the
 * history) and returns the tokens that still need evaluating; at least one, so there are logits to sample from.
 */
async function reusePrefix(sequence: LlamaContextSequence, tokens: Token[]): Promise<Token[]> {
  const { firstDifferentIndex } = sequence.compareContextTokens(tokens);
  const keep = Math.min(firstDifferentIndex, tokens.length - 1);
  if (keep <= 0) {
    if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
    return tokens;
  }
  if (sequence.nextTokenIndex > keep) {
    await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  }
  return tokens.slice(keep);
}

/** OpenAI embeddings are unit length, so cosine similarity is a dot product; llama-server normalises the same way. */
function l2Normalize(vector: readonly number[]): number[] {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? vector.map((x) => x / norm) : [...vector];
}
