import type { GenerationChunk, LogprobEntry, TokenLogprob } from "../../core/types.js";
import type { StepLogprobs } from "./logprobs.js";
import { TokenTextStream } from "./TokenTextStream.js";

export interface TokenLoopOptions<Token> {
  /** The choice these chunks belong to. */
  index: number;
  promptTokens: readonly Token[];
  /** Generated tokens after which the answer ends with `length`. 0 generates nothing. */
  maxTokens: number;
  /** Stop sequences: text that ends the answer (not included in it). */
  stop: readonly string[];
  /** Emit `token_ids` chunks (prompt first) beside the text. */
  returnTokenIds: boolean;
  /** End-of-generation tokens (the model's, and those the chat template ends a turn with): `stop`, not shown. */
  isEnd(token: Token): boolean;
  /** Stateful detokenization: the text of `tokens` after `last` (see StreamingDetokenizer). */
  detokenize: ConstructorParameters<typeof TokenTextStream<Token>>[0];
  toId(token: Token): number;
  /**
   * With logprobs on: the logprobs of the token the engine just yielded (see logprobs.ts), and how many of the top
   * ones to report; the token's text is its piece in context.
   */
  logprobs?: { top: number; step(token: Token): StepLogprobs; fromId(id: number): Token } | undefined;
  signal: AbortSignal;
}

/** JSON has no -Infinity: a token the model rules out gets OpenAI's floor instead. */
const LOGPROB_FLOOR = -9999;

/**
 * The one generation loop of the in-process engines: an engine supplies sampled tokens (it evaluates and samples
 * only when asked for the next one, so leaving the loop stops it within a token) and this turns them into the
 * chunks every route understands: token ids, detokenized text with stop sequences applied, the finish reason and
 * usage. Cancellation: an aborted signal ends the loop and throws its reason.
 */
export async function* generateFromTokens<Token>(tokens: AsyncIterable<Token>, o: TokenLoopOptions<Token>): AsyncGenerator<GenerationChunk> {
  const { index, signal } = o;
  const text = new TokenTextStream<Token>(o.detokenize, o.stop);
  let completionTokens = 0;
  let finish: "stop" | "length" = "length";
  // logprobs: the entries of tokens whose text is still held back go out with (before) that text.
  const lp = o.logprobs;
  const pending: LogprobEntry[] = [];
  const context: Token[] = o.promptTokens.slice(-8);
  const tokenLogprob = (token: Token, logprob: number): TokenLogprob => {
    const text = o.detokenize([token], context);
    return { token: text, logprob: Math.max(logprob, LOGPROB_FLOOR), bytes: [...Buffer.from(text, "utf8")] };
  };
  if (o.returnTokenIds) yield { type: "token_ids", index, ids: o.promptTokens.map((token) => o.toId(token)), prompt: true };
  if (o.maxTokens > 0) {
    for await (const token of tokens) {
      if (signal.aborted) break; // leaving the loop ends the engine's iterator: the slot is free within one token
      if (o.isEnd(token)) {
        finish = "stop";
        break;
      }
      completionTokens++;
      if (o.returnTokenIds) yield { type: "token_ids", index, ids: [o.toId(token)] };
      if (lp) {
        const step = lp.step(token);
        pending.push({ ...tokenLogprob(token, step.logprob), top: step.top.slice(0, lp.top).map((t) => tokenLogprob(lp.fromId(t.id), t.logprob)) });
        context.push(token);
        if (context.length > 8) context.shift();
      }
      const match = text.push(token);
      if (match.stopped) {
        // The token that completed the stop sequence is not part of the answer; those before it are if any of
        // their text is.
        pending.pop();
        if (match.text && pending.length > 0) yield { type: "logprobs", index, entries: pending.splice(0) };
        if (match.text) yield { type: "text", index, text: match.text };
        pending.length = 0;
        finish = "stop";
        break;
      }
      if (match.text) {
        if (pending.length > 0) yield { type: "logprobs", index, entries: pending.splice(0) };
        yield { type: "text", index, text: match.text };
      }
      if (completionTokens >= o.maxTokens) break;
    }
  }
  signal.throwIfAborted();
  const tail = text.end();
  if (tail.stopped) finish = "stop";
  if (pending.length > 0) yield { type: "logprobs", index, entries: pending.splice(0) };
  if (tail.text) yield { type: "text", index, text: tail.text };
  yield { type: "finish", index, reason: finish };
  yield { type: "usage", usage: { promptTokens: o.promptTokens.length, completionTokens } };
}
