import { randomBytes } from "node:crypto";
import type { FinishReason, Usage } from "../../core/types.js";

export interface FoldedChoice {
  index: number;
  text: string;
  finishReason: FinishReason | null;
}

/**
 * Turns internal generation events into one OpenAI resource's wire format: serialized JSON for each streamed
 * event, an object for the whole response.
 */
export interface ResponseFormatter {
  /** Sent once per choice before any text (chat sends the assistant role here). */
  start(index: number): string | null;
  text(index: number, text: string): string;
  finish(index: number, reason: FinishReason): string;
  usage(usage: Usage): string;
  whole(choices: FoldedChoice[], usage: Usage): object;
}

const TEXT_MARK = "@@tabagent-text@@";

/**
 * A text chunk is the same JSON every time but for its text: serialize it once per choice index and splice the
 * text in, instead of building and stringifying an object per token.
 */
function textTemplate(make: (index: number, text: string) => object): (index: number, text: string) => string {
  const cache = new Map<number, [string, string]>();
  return (index, text) => {
    let parts = cache.get(index);
    if (!parts) {
      const json = JSON.stringify(make(index, TEXT_MARK));
      const at = json.lastIndexOf(`"${TEXT_MARK}"`);
      parts = [json.slice(0, at), json.slice(at + TEXT_MARK.length + 2)];
      cache.set(index, parts);
    }
    return parts[0] + JSON.stringify(text) + parts[1];
  };
}

export function usageToWire(u: Usage) {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens };
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("base64url")}`;
}

interface FormatterContext {
  model: string;
  /** With include_usage, OpenAI sends `usage: null` on every chunk but the last. */
  includeUsage: boolean;
}

export function chatFormatter({ model, includeUsage }: FormatterContext): ResponseFormatter {
  const id = newId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "chat.completion.chunk", created, model, system_fingerprint: null };
  const chunk = (index: number, delta: object, finish: FinishReason | null) => ({
    ...base,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  return {
    start: (index) => JSON.stringify(chunk(index, { role: "assistant", content: "" }, null)),
    text: textTemplate((index, text) => chunk(index, { content: text }, null)),
    finish: (index, reason) => JSON.stringify(chunk(index, {}, reason)),
    usage: (usage) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage) }),
    whole: (choices, usage) => ({
      id,
      object: "chat.completion",
      created,
      model,
      system_fingerprint: null,
      choices: choices.map((c) => ({
        index: c.index,
        message: { role: "assistant", content: c.text, refusal: null },
        logprobs: null,
        finish_reason: c.finishReason ?? "stop",
      })),
      usage: usageToWire(usage),
    }),
  };
}

export function completionFormatter({ model, includeUsage }: FormatterContext): ResponseFormatter {
  const id = newId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "text_completion", created, model, system_fingerprint: null };
  const chunk = (index: number, text: string, finish: FinishReason | null) => ({
    ...base,
    choices: [{ index, text, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  return {
    start: () => null,
    text: textTemplate((index, text) => chunk(index, text, null)),
    finish: (index, reason) => JSON.stringify(chunk(index, "", reason)),
    usage: (usage) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage) }),
    whole: (choices, usage) => ({
      ...base,
      choices: choices.map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finishReason ?? "stop" })),
      usage: usageToWire(usage),
    }),
  };
}
