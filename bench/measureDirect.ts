// The baseline: node-llama-cpp driven directly in this process, doing the same engine work per request as the
// daemon's NodeLlamaCppBackend (same runtime options, ChatML prompt with BOS, prefix reuse, evaluate loop,
// detokenize per token) and nothing else: no HTTP, no JSON, no SSE.
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
import type { RunSample, StreamSample } from "./stats.js";

export interface DirectOptions {
  modelPath: string;
  threads: number;
  contextSize: number;
  /** Context sequences: the most streams run at once (the daemon's --parallel). */
  sequences: number;
}

export interface DirectRunner {
  /** Tokens of the rendered prompt, to compare with the daemon's usage.prompt_tokens. */
  promptTokenCount(prompt: string): number;
  run(concurrency: number, prompt: string, maxTokens: number): Promise<RunSample>;
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
  const loadedModel = model;
  const loadedContext = context;
  const chatWrapper = resolveChatWrapper(loadedModel);
  // Single-token turn-end triggers of the template (e.g. <|im_end|>) end a generation, as in the backend.
  const stopTokens = new Set<Token>();
  for (const trigger of chatWrapper.generateContextState({ chatHistory: [] }).stopGenerationTriggers) {
    const tokens = trigger.tokenize(loadedModel.tokenizer);
    if (tokens.length === 1) stopTokens.add(tokens[0]!);
  }
  const sequences: LlamaContextSequence[] = [];
  for (let i = 0; i < options.sequences; i++) sequences.push(loadedContext.getSequence());

  const render = (prompt: string) => renderChatPrompt(loadedModel, chatWrapper, prompt);

  return {
    promptTokenCount: (prompt) => render(prompt).length,
    async run(concurrency, prompt, maxTokens) {
      if (concurrency > sequences.length) throw new Error(`concurrency ${concurrency} exceeds ${sequences.length} sequences`);
      return Promise.all(sequences.slice(0, concurrency).map((seq) => generate(loadedModel, seq, stopTokens, render, prompt, maxTokens)));
    },
    async dispose() {
      await loadedContext.dispose();
      await loadedModel.dispose();
      await llama.dispose();
    },
  };
}

/** As NodeLlamaCppBackend.renderChat: one user turn, an open assistant turn, BOS prepended when the model wants it. */
function renderChatPrompt(model: LlamaModel, chatWrapper: ChatWrapper, prompt: string): Token[] {
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

async function generate(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  stopTokens: ReadonlySet<Token>,
  render: (prompt: string) => Token[],
  prompt: string,
  maxTokens: number,
): Promise<StreamSample> {
  const startMs = performance.now();
  const promptTokens = render(prompt);
  const toEvaluate = await reusePrefix(sequence, promptTokens);
  const arrivalsMs: number[] = [];
  const recent: Token[] = [];
  let text = "";
  let completionTokens = 0;
  // The daemon's sampling for temperature 0 and no penalties; EOG is yielded so an early end is visible, not hidden.
  for await (const token of sequence.evaluate(toEvaluate, { yieldEogToken: true, temperature: 0 })) {
    if (model.isEogToken(token) || stopTokens.has(token)) break;
    const piece = model.detokenize([token], false, recent);
    recent.push(token);
    if (recent.length > 16) recent.shift();
    completionTokens++;
    arrivalsMs.push(performance.now());
    text += piece;
    if (completionTokens >= maxTokens) break;
  }
  return { startMs, arrivalsMs, completionTokens, promptTokens: promptTokens.length, text };
}
