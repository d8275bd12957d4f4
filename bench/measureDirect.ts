// The baseline: node-llama-cpp driven directly in this process, doing the same engine work per request as the
// daemon's NodeLlamaCppBackend (same runtime options, ChatML prompt with BOS, a LIFO pool of sequences with prefix
// reuse, evaluate loop, detokenize per token) and nothing else: no HTTP, no JSON, no SSE.
import {
  getLlama,
  resolveChatWrapper,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { performance } from "node:perf_hooks";
import type { StreamOptions, StreamSample, Streamer } from "./types.js";

interface DirectOptions {
  modelPath: string;
  threads: number;
  contextSize: number;
  /** Context sequences: the most streams run at once (the daemon's --parallel). */
  sequences: number;
}

export interface DirectRunner extends Streamer {
  /** Tokens of the rendered prompt, to compare with the daemon's usage.prompt_tokens. */
  promptTokenCount(prompt: string): number;
  dispose(): Promise<void>;
}

export async function openDirect(options: DirectOptions): Promise<DirectRunner> {
  // The same runtime options as src/backends/llamacpp/LlamaProvider.ts, so both sides run the same binary and threads.
  const llama: Llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: options.threads,
    logLevel: "warn" as LlamaLogLevel,
  });
  let model: LlamaModel | null = null;
  let context: LlamaContext | null = null;
  try {
    model = await llama.loadModel({ modelPath: options.modelPath });
    const contextSize = Math.min(options.contextSize, model.trainContextSize || options.contextSize);
    context = await model.createContext({ contextSize, sequences: options.sequences, threads: options.threads });
  } catch (err) {
    await context?.dispose();
    await model?.dispose();
    await llama.dispose();
    throw err;
  }
  const engine: Engine = {
    model,
    context,
    chatWrapper: resolveChatWrapper(model),
    stopTokens: new Set<Token>(),
    freeSequences: [],
  };
  // Single-token turn-end triggers of the template (e.g. <|im_end|>) end a generation, as in the backend.
  for (const trigger of engine.chatWrapper.generateContextState({ chatHistory: [] }).stopGenerationTriggers) {
    const tokens = trigger.tokenize(model.tokenizer);
    if (tokens.length === 1) engine.stopTokens.add(tokens[0]!);
  }
  const loadedContext = context;
  const loadedModel = model;
  return {
    promptTokenCount: (prompt) => renderChatPrompt(engine, prompt).length,
    stream: (prompt, maxTokens, streamOptions) => generate(engine, prompt, maxTokens, streamOptions),
    async dispose() {
      await loadedContext.dispose();
      await loadedModel.dispose();
      await llama.dispose();
    },
  };
}

interface Engine {
  model: LlamaModel;
  context: LlamaContext;
  chatWrapper: ChatWrapper;
  stopTokens: Set<Token>;
  /** As the backend: sequences are taken LIFO and created on demand, up to the context's sequence count. */
  freeSequences: LlamaContextSequence[];
}

/** As NodeLlamaCppBackend.renderChat: one user turn, an open assistant turn, BOS prepended when the model wants it. */
function renderChatPrompt({ model, chatWrapper }: Engine, prompt: string): Token[] {
  const { contextText } = chatWrapper.generateContextState({
    chatHistory: [
      { type: "user", text: prompt },
      { type: "model", response: [] },
    ],
  });
  const tokens = contextText.tokenize(model.tokenizer);
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

/**
 * As the backend's reusePrefix: a repeated prompt keeps its KV cache and only the last prompt token is evaluated
 * again. The daemon does this on every request, so the baseline must too or TTFT would compare different work.
 */
async function reusePrefix(sequence: LlamaContextSequence, tokens: Token[]): Promise<Token[]> {
  const { firstDifferentIndex } = sequence.compareContextTokens(tokens);
  const keep = Math.min(firstDifferentIndex, tokens.length - 1);
  if (keep <= 0) {
    await sequence.clearHistory();
    return tokens;
  }
  if (sequence.nextTokenIndex > keep) await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  return tokens.slice(keep);
}

async function generate(engine: Engine, prompt: string, maxTokens: number, options: StreamOptions = {}): Promise<StreamSample> {
  const startMs = options.startMs ?? performance.now();
  const { model, stopTokens } = engine;
  const promptTokens = renderChatPrompt(engine, prompt);
  const sequence = engine.freeSequences.pop() ?? engine.context.getSequence();
  const arrivalsMs: number[] = [];
  let text = "";
  let completionTokens = 0;
  try {
    const toEvaluate = await reusePrefix(sequence, promptTokens);
    const recent: Token[] = [];
    // The daemon's sampling for temperature 0 and no penalties; EOG is yielded so an early end is visible, not hidden.
    for await (const token of sequence.evaluate(toEvaluate, { yieldEogToken: true, temperature: 0 })) {
      if (options.signal?.aborted) break;
      if (model.isEogToken(token) || stopTokens.has(token)) break;
      const piece = model.detokenize([token], false, recent);
      recent.push(token);
      if (recent.length > 16) recent.shift();
      completionTokens++;
      arrivalsMs.push(performance.now());
      if (completionTokens === 1) options.onFirstToken?.();
      text += piece;
      if (completionTokens >= maxTokens) break;
    }
  } finally {
    engine.freeSequences.push(sequence);
  }
  const aborted = options.signal?.aborted === true ? { aborted: true } : {};
  return { startMs, arrivalsMs, completionTokens, promptTokens: promptTokens.length, text, ...aborted };
}
