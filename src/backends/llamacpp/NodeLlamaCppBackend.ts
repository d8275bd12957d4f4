import type { LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import { basename } from "node:path";
import type { Logger } from "pino";
import { ContextLengthExceededError, InvalidRequestError, ModelLoadError, ModelNotLoadedError } from "../../core/errors.js";
import type { ChatMessage, ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor, SamplingParams } from "../../core/types.js";
import type { Backend } from "../Backend.js";
import { ChatTemplate } from "../generation/ChatTemplate.js";
import { generateFromTokens } from "../generation/generateFromTokens.js";
import type { GgufProbe } from "./GgufProbe.js";
import type { LlamaProvider } from "./LlamaProvider.js";

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
}

interface Loaded {
  model: LlamaModel;
  context: LlamaContext | null;
  embedding: LlamaEmbeddingContext | null;
  /** The chat template (config override, else the GGUF's); null for models that only complete text. */
  template: ChatTemplate | null;
  /** Tokens the chat template uses to end a turn, beyond the model's own end-of-generation tokens. */
  stopTokens: Set<Token>;
  freeSequences: LlamaContextSequence[];
  /**
   * KV-cache edits of requests that are starting. They need node-llama-cpp's context lock, which its decode loop
   * holds for as long as any sequence keeps asking for tokens: running generations pause between tokens until
   * these are done, or a new request would wait for every running one to finish.
   */
  pendingPrefixWork: Set<Promise<void>>;
  contextSize: number;
}

/** GGUF models in this process through node-llama-cpp: chat, completions and embeddings. */
export class NodeLlamaCppBackend implements Backend {
  readonly parallel: number;
  private loaded: Loaded | null = null;

  constructor(
    readonly descriptor: ModelDescriptor,
    private readonly options: NodeLlamaCppBackendOptions,
  ) {
    // An embedding context evaluates one input at a time.
    this.parallel = descriptor.task === "embeddings" ? 1 : options.parallel;
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
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: this.descriptor.path, gpuLayers, loadSignal: signal });
    } catch (err) {
      throw new ModelLoadError(this.descriptor.id, (err as Error).message, err);
    }
    try {
      const contextSize = Math.min(this.options.contextSize, model.trainContextSize || this.options.contextSize);
      if (this.descriptor.task === "embeddings") {
        const embedding = await model.createEmbeddingContext({ contextSize, threads });
        this.loaded = { model, context: null, embedding, template: null, stopTokens: new Set(), freeSequences: [], pendingPrefixWork: new Set(), contextSize };
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
      this.loaded = { model, context, embedding: null, template, stopTokens, freeSequences: [], pendingPrefixWork: new Set(), contextSize: context.contextSize };
    } catch (err) {
      await model.dispose();
      throw new ModelLoadError(this.descriptor.id, (err as Error).message, err);
    }
  }

  async unload(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (!loaded) return;
    await loaded.template?.close();
    await loaded.embedding?.dispose();
    await loaded.context?.dispose();
    await loaded.model.dispose();
  }

  private require(): Loaded {
    if (!this.loaded) throw new ModelNotLoadedError(this.descriptor.id);
    return this.loaded;
  }

  async *chat(request: ChatRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require();
    const tokens = await this.renderChat(loaded, request.messages);
    yield* this.generate(loaded, tokens, request.sampling, 0, "messages", signal, request.returnTokenIds);
  }

  async *complete(request: CompletionRequest, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    const loaded = this.require();
    const { model } = loaded;
    const tokens = withBos(model, model.tokenize(request.prompt, false));
    yield* this.generate(loaded, tokens, request.sampling, 0, "prompt", signal, request.returnTokenIds);
  }

  async embed(request: EmbedRequest, signal: AbortSignal): Promise<EmbedResult> {
    const loaded = this.require();
    if (!loaded.embedding) throw new InvalidRequestError(`Model '${this.descriptor.id}' does not produce embeddings.`, { param: "model" });
    const vectors: number[][] = [];
    let promptTokens = 0;
    for (const [i, text] of request.input.entries()) {
      signal.throwIfAborted();
      const tokens = loaded.model.tokenize(text);
      if (tokens.length > loaded.contextSize) {
        throw new ContextLengthExceededError(tokens.length, loaded.contextSize, `input[${i}]`);
      }
      promptTokens += tokens.length;
      const { vector } = await loaded.embedding.getEmbeddingFor(tokens);
      vectors.push(l2Normalize(vector));
    }
    return { vectors, promptTokens };
  }

  private async renderChat(loaded: Loaded, messages: ChatMessage[]): Promise<Token[]> {
    if (!loaded.template) throw new InvalidRequestError(`The model '${this.descriptor.id}' has no chat template; use /v1/completions.`, { param: "model" });
    const text = await loaded.template.render(messages);
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
  ): AsyncGenerator<GenerationChunk> {
    const { model, contextSize } = loaded;
    if (promptTokens.length >= contextSize) throw new ContextLengthExceededError(promptTokens.length, contextSize, promptParam);
    const room = contextSize - promptTokens.length;
    const maxTokens = Math.min(sampling.maxTokens ?? room, room);

    const sequence = loaded.freeSequences.pop() ?? loaded.context!.getSequence();
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
      const penalize = sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
      const generated: Token[] = [];
      const evaluation = sequence.evaluate(toEvaluate, {
        // We want to see the end-of-generation token: without it an ended iterator looks like a length stop.
        yieldEogToken: true,
        temperature: sampling.temperature,
        topP: sampling.topP,
        seed: sampling.seed,
        repeatPenalty: penalize
          ? {
              punishTokens: () => generated.slice(-64),
              penalty: 1,
              presencePenalty: sampling.presencePenalty,
              frequencyPenalty: sampling.frequencyPenalty,
            }
          : undefined,
      });
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
        signal,
      });
    } finally {
      loaded.freeSequences.push(sequence);
    }
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
