import type { GenerationChunk } from "../../core/types.js";
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
  signal: AbortSignal;
}

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
      const match = text.push(token);
      if (match.text) yield { type: "text", index, text: match.text };
      if (match.stopped) {
        finish = "stop";
        break;
      }
      if (completionTokens >= o.maxTokens) break;
    }
  }
  signal.throwIfAborted();
  const tail = text.end();
  if (tail.stopped) finish = "stop";
  if (tail.text) yield { type: "text", index, text: tail.text };
  yield { type: "finish", index, reason: finish };
  yield { type: "usage", usage: { promptTokens: o.promptTokens.length, completionTokens } };
}
