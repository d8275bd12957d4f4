import { randomBytes } from "node:crypto";
import type { FinishReason, Usage } from "../../core/types.js";

export interface FoldedChoice {
  index: number;
  text: string;
  finishReason: FinishReason | null;
}

/** Turns internal generation events into one OpenAI resource's wire objects (streamed or whole). */
export interface ResponseFormatter {
  /** Sent once per choice before any text (chat sends the assistant role here). */
  start(index: number): object | null;
  text(index: number, text: string): object;
  finish(index: number, reason: FinishReason): object;
  usage(usage: Usage): object;
  whole(choices: FoldedChoice[], usage: Usage): object;
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
    start: (index) => chunk(index, { role: "assistant", content: "" }, null),
    text: (index, text) => chunk(index, { content: text }, null),
    finish: (index, reason) => chunk(index, {}, reason),
    usage: (usage) => ({ ...base, choices: [], usage: usageToWire(usage) }),
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
    text: (index, text) => chunk(index, text, null),
    finish: (index, reason) => chunk(index, "", reason),
    usage: (usage) => ({ ...base, choices: [], usage: usageToWire(usage) }),
    whole: (choices, usage) => ({
      ...base,
      choices: choices.map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finishReason ?? "stop" })),
      usage: usageToWire(usage),
    }),
  };
}
