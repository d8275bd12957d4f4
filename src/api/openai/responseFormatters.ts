import { randomBytes } from "node:crypto";
import { TabAgentError } from "../../core/errors.js";
import type { FinishReason, ToolCall, Usage } from "../../core/types.js";

export interface FoldedChoice {
  index: number;
  text: string;
  finishReason: FinishReason | null;
  toolCalls: ToolCall[];
  /** Set when the request asked for `return_token_ids`. */
  tokenIds?: number[];
  promptTokenIds?: number[];
}

/** `return_token_ids` fields riding on a streamed event: the ids since the last event, the prompt's on the first. */
export interface TokenIdsExtra {
  tokenIds: number[];
  promptTokenIds?: number[];
}

/**
 * Turns internal generation events into one OpenAI resource's wire format: serialized JSON for each streamed
 * event, an object for the whole response.
 */
export interface ResponseFormatter {
  /** Sent once per choice before any text (chat sends the assistant role here). */
  start(index: number): string | null;
  text(index: number, text: string, ids?: TokenIdsExtra): string;
  /** A tool call starts (`callIndex` numbers the calls within the choice): id, type and name, arguments "". */
  toolCallStart(index: number, callIndex: number, id: string, name: string, ids?: TokenIdsExtra): string;
  /** More of a started call's arguments. */
  toolCallArguments(index: number, callIndex: number, args: string, ids?: TokenIdsExtra): string;
  finish(index: number, reason: FinishReason, ids?: TokenIdsExtra): string;
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

/** vLLM's layout: `token_ids` on the choice; the prompt's ids on the choice (completions) or the response (chat). */
function idsOnChoice(ids: TokenIdsExtra | undefined, withPrompt: boolean): object {
  if (!ids) return {};
  return { ...(withPrompt && ids.promptTokenIds ? { prompt_token_ids: ids.promptTokenIds } : {}), token_ids: ids.tokenIds };
}

function toolCallToWire(call: ToolCall) {
  return { id: call.id, type: "function" as const, function: { name: call.name, arguments: call.arguments } };
}

export function chatFormatter({ model, includeUsage }: FormatterContext): ResponseFormatter {
  const id = newId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "chat.completion.chunk", created, model, system_fingerprint: null };
  const chunk = (index: number, delta: object, finish: FinishReason | null, ids?: TokenIdsExtra) => ({
    ...base,
    ...(ids?.promptTokenIds ? { prompt_token_ids: ids.promptTokenIds } : {}),
    choices: [{ index, delta, logprobs: null, finish_reason: finish, ...idsOnChoice(ids, false) }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const plainText = textTemplate((index, text) => chunk(index, { content: text }, null));
  return {
    start: (index) => JSON.stringify(chunk(index, { role: "assistant", content: "" }, null)),
    text: (index, text, ids) => (ids ? JSON.stringify(chunk(index, { content: text }, null, ids)) : plainText(index, text)),
    toolCallStart: (index, callIndex, callId, name, ids) =>
      JSON.stringify(chunk(index, { tool_calls: [{ index: callIndex, ...toolCallToWire({ id: callId, name, arguments: "" }) }] }, null, ids)),
    toolCallArguments: (index, callIndex, args, ids) => JSON.stringify(chunk(index, { tool_calls: [{ index: callIndex, function: { arguments: args } }] }, null, ids)),
    finish: (index, reason, ids) => JSON.stringify(chunk(index, {}, reason, ids)),
    usage: (usage) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage) }),
    whole: (choices, usage) => ({
      id,
      object: "chat.completion",
      created,
      model,
      system_fingerprint: null,
      ...(choices[0]?.promptTokenIds ? { prompt_token_ids: choices[0].promptTokenIds } : {}),
      choices: choices.map((c) => ({
        index: c.index,
        // With tool calls and no text, OpenAI sends content null.
        message:
          c.toolCalls.length > 0
            ? { role: "assistant", content: c.text === "" ? null : c.text, refusal: null, tool_calls: c.toolCalls.filter(Boolean).map(toolCallToWire) }
            : { role: "assistant", content: c.text, refusal: null },
        logprobs: null,
        finish_reason: c.finishReason ?? "stop",
        ...(c.tokenIds ? { token_ids: c.tokenIds } : {}),
      })),
      usage: usageToWire(usage),
    }),
  };
}

export function completionFormatter({ model, includeUsage }: FormatterContext): ResponseFormatter {
  const id = newId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "text_completion", created, model, system_fingerprint: null };
  const chunk = (index: number, text: string, finish: FinishReason | null, ids?: TokenIdsExtra) => ({
    ...base,
    choices: [{ index, text, logprobs: null, finish_reason: finish, ...idsOnChoice(ids, true) }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const plainText = textTemplate((index, text) => chunk(index, text, null));
  return {
    start: () => null,
    text: (index, text, ids) => (ids ? JSON.stringify(chunk(index, text, null, ids)) : plainText(index, text)),
    toolCallStart: () => {
      throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
    },
    toolCallArguments: () => {
      throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
    },
    finish: (index, reason, ids) => JSON.stringify(chunk(index, "", reason, ids)),
    usage: (usage) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage) }),
    whole: (choices, usage) => {
      if (choices.some((c) => c.toolCalls.length > 0)) {
        throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
      }
      return {
        ...base,
        choices: choices.map((c) => ({
          index: c.index,
          text: c.text,
          logprobs: null,
          finish_reason: c.finishReason ?? "stop",
          ...(c.promptTokenIds ? { prompt_token_ids: c.promptTokenIds } : {}),
          ...(c.tokenIds ? { token_ids: c.tokenIds } : {}),
        })),
        usage: usageToWire(usage),
      };
    },
  };
}
