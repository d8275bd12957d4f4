import type { LlamaModel, LlamaRankingContext, Token } from "node-llama-cpp";
import { InvalidRequestError } from "../../core/errors.js";
import type { RerankRequest, RerankResult } from "../../core/rerank.js";

/** The part of node-llama-cpp 3.21's LlamaRankingContext that scores a ready token sequence (internal there). */
interface RankingInternals {
  _evaluateRankingForInput(input: Token[]): Promise<number>;
}

/**
 * A reranker GGUF (pooling type rank) in this process: node-llama-cpp's ranking context, fed the token sequence
 * llama-server builds (format_prompt_rerank: BOS, query, EOS and SEP where the vocabulary adds them, document,
 * EOS), so one model scores the same on both engines. node-llama-cpp's own rank() always adds EOS and SEP, which
 * for a BERT vocabulary (EOS = SEP) puts two separators between query and document. Scores are node-llama-cpp's:
 * the sigmoid of the head's logit (Qwen3's softmax as it is).
 */
export class GgufRanker {
  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaRankingContext,
  ) {}

  static async create(model: LlamaModel, options: { contextSize: number; threads: number; signal: AbortSignal }): Promise<GgufRanker> {
    const context = await model.createRankingContext({ contextSize: options.contextSize, threads: options.threads, createSignal: options.signal });
    return new GgufRanker(model, context);
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  /** The rerank prompt of llama.cpp's server for one pair (or the GGUF's own `chat_template.rerank`). */
  private input(query: string, document: string): Token[] {
    const { model } = this;
    const template = model.fileInfo.metadata?.tokenizer?.["chat_template.rerank"];
    if (typeof template === "string" && template.includes("{query}") && template.includes("{document}")) {
      return model.tokenize(template.replaceAll("{query}", query).replaceAll("{document}", document), true);
    }
    const ggml = (model.fileInfo.metadata?.tokenizer?.ggml ?? {}) as Record<string, unknown>;
    const { bos, eos, sep } = model.tokens;
    const end = eos ?? sep;
    // llama.cpp's own reading of the vocabulary (add_bos/add_eos keys, else its default per tokenizer); add_sep
    // has no getter: the key, else llama.cpp's default (llama-vocab.cpp: WordPiece and a few BPE pre-tokenizers).
    const addBos = model.tokens.shouldPrependBosToken && bos !== null;
    const addEos = model.tokens.shouldAppendEosToken && end !== null;
    const sepByDefault = ggml.model === "bert" || ["jina-v1-en", "jina-v2-code", "roberta-bpe"].includes(String(ggml.pre));
    const addSep = (typeof ggml.add_sep_token === "boolean" ? ggml.add_sep_token : sepByDefault) && sep !== null;
    return [
      ...(addBos ? [bos] : []),
      ...model.tokenize(query, false),
      ...(addEos ? [end] : []),
      ...(addSep ? [sep] : []),
      ...model.tokenize(document, false),
      ...(addEos ? [end] : []),
    ];
  }

  async rank(request: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
    const internals = this.context as unknown as Partial<RankingInternals>;
    const scores: number[] = [];
    let promptTokens = 0;
    for (const [i, document] of request.documents.entries()) {
      signal.throwIfAborted();
      const input = this.input(request.query, document);
      if (input.length > this.contextSize) throw tooLong(i, input.length, this.contextSize);
      promptTokens += input.length;
      scores.push(
        typeof internals._evaluateRankingForInput === "function"
          ? await internals._evaluateRankingForInput.call(this.context, input)
          : await this.context.rank(request.query, document),
      );
    }
    return { scores, promptTokens };
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
  }
}

/** The same refusal on every engine: a pair longer than the model reads is refused, never cut. */
export function tooLong(index: number, tokens: number, max: number): InvalidRequestError {
  return new InvalidRequestError(`'documents[${index}]' with the query is ${tokens} tokens; this model reads at most ${max}.`, {
    param: `documents[${index}]`,
    code: "context_length_exceeded",
  });
}
