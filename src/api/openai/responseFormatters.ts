import { randomBytes } from "node:crypto";
import { TabAgentError } from "../../core/errors.js";
import type { FinishReason, LogprobEntry, TokenLogprob, ToolCall, Usage } from "../../core/types.js";
import type { Timings } from "../GenerationTimings.js";

export interface FoldedChoice {
  index: number;
  text: string;
  finishReason: FinishReason | null;
  toolCalls: ToolCall[];
  /** Set when the request asked for `return_token_ids`. */
  tokenIds?: number[];
  promptTokenIds?: number[];
  /** Set when the request asked for logprobs: each generated token's, and where its text starts in `text`. */
  logprobs?: LogprobEntry[];
  textOffsets?: number[];
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
  /** `logprobs`: the tokens this text came from (they ride on the event that carries their text). */
  text(index: number, text: string, ids?: TokenIdsExtra, logprobs?: LogprobEntry[]): string;
  /** A tool call starts (`callIndex` numbers the calls within the choice): id, type and name, arguments "". */
  toolCallStart(index: number, callIndex: number, id: string, name: string, ids?: TokenIdsExtra): string;
  /** More of a started call's arguments. */
  toolCallArguments(index: number, callIndex: number, args: string, ids?: TokenIdsExtra): string;
  /** `timings`: set on the stream's final chunk when the request asked for them. */
  finish(index: number, reason: FinishReason, ids?: TokenIdsExtra, logprobs?: LogprobEntry[], timings?: Timings): string;
  usage(usage: Usage, timings?: Timings): string;
  whole(choices: FoldedChoice[], usage: Usage, timings?: Timings): object;
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
  /** The request asked for logprobs: a choice without tokens still gets an (empty) logprobs object. */
  logprobs?: boolean;
}

function tokenLogprobToWire(t: TokenLogprob) {
  return { token: t.token, logprob: t.logprob, bytes: t.bytes };
}

/** Chat's `logprobs`: `{content: [{token, logprob, bytes, top_logprobs: [...]}]}`. */
export function chatLogprobsToWire(entries: readonly LogprobEntry[]) {
  return { content: entries.map((e) => ({ ...tokenLogprobToWire(e), top_logprobs: e.top.map(tokenLogprobToWire) })), refusal: null };
}

/**
 * The legacy completions `logprobs`: parallel arrays, and for each token a `{token: logprob}` object of the most
 * likely tokens plus the chosen one (OpenAI's "up to logprobs + 1"). `text_offset`: where each token's text starts.
 */
export function completionLogprobsToWire(entries: readonly LogprobEntry[], offsets: readonly number[]) {
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => {
      const top: Record<string, number> = {};
      for (const t of e.top) if (!Object.hasOwn(top, t.token)) top[t.token] = t.logprob;
      if (!Object.hasOwn(top, e.token)) top[e.token] = e.logprob;
      return top;
    }),
    text_offset: [...offsets],
  };
}

/** Where each token's text starts, the first at `start`. */
export function textOffsets(entries: readonly LogprobEntry[], start: number): number[] {
  let at = start;
  return entries.map((e) => {
    const here = at;
    at += e.token.length;
    return here;
  });
}

/** vLLM's layout: `token_ids` on the choice; the prompt's ids on the choice (completions) or the response (chat). */
function idsOnChoice(ids: TokenIdsExtra | undefined, withPrompt: boolean): object {
  if (!ids) return {};
  return { ...(withPrompt && ids.promptTokenIds ? { prompt_token_ids: ids.promptTokenIds } : {}), token_ids: ids.tokenIds };
}

function toolCallToWire(call: ToolCall) {
  return { id: call.id, type: "function" as const, function: { name: call.name, arguments: call.arguments } };
}

export function chatFormatter({ model, includeUsage, logprobs = false }: FormatterContext): ResponseFormatter {
  const id = newId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "chat.completion.chunk", created, model, system_fingerprint: null };
  const chunk = (index: number, delta: object, finish: FinishReason | null, ids?: TokenIdsExtra, lp?: LogprobEntry[]) => ({
    ...base,
    ...(ids?.promptTokenIds ? { prompt_token_ids: ids.promptTokenIds } : {}),
    choices: [{ index, delta, logprobs: lp ? chatLogprobsToWire(lp) : null, finish_reason: finish, ...idsOnChoice(ids, false) }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const plainText = textTemplate((index, text) => chunk(index, { content: text }, null));
  return {
    start: (index) => JSON.stringify(chunk(index, { role: "assistant", content: "" }, null)),
    text: (index, text, ids, lp) => (ids || lp ? JSON.stringify(chunk(index, { content: text }, null, ids, lp)) : plainText(index, text)),
    toolCallStart: (index, callIndex, callId, name, ids) =>
      JSON.stringify(chunk(index, { tool_calls: [{ index: callIndex, ...toolCallToWire({ id: callId, name, arguments: "" }) }] }, null, ids)),
    toolCallArguments: (index, callIndex, args, ids) => JSON.stringify(chunk(index, { tool_calls: [{ index: callIndex, function: { arguments: args } }] }, null, ids)),
    finish: (index, reason, ids, lp, timings) => JSON.stringify({ ...chunk(index, {}, reason, ids, lp), ...(timings ? { timings } : {}) }),
    usage: (usage, timings) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage), ...(timings ? { timings } : {}) }),
    whole: (choices, usage, timings) => ({
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
        logprobs: c.logprobs || logprobs ? chatLogprobsToWire(c.logprobs ?? []) : null,
        finish_reason: c.finishReason ?? "stop",
        ...(c.tokenIds ? { token_ids: c.tokenIds } : {}),
      })),
      usage: usageToWire(usage),
      ...(timings ? { timings } : {}),
    }),
  };
}

export function completionFormatter({ model, includeUsage, logprobs = false }: FormatterContext): ResponseFormatter {
  const id = newId("cmpl");
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: "text_completion", created, model, system_fingerprint: null };
  // Streamed text_offset: how much text each choice has sent so far.
  const sent = new Map<number, number>();
  const wireLogprobs = (index: number, lp: LogprobEntry[] | undefined) => (lp ? completionLogprobsToWire(lp, textOffsets(lp, sent.get(index) ?? 0)) : null);
  const chunk = (index: number, text: string, finish: FinishReason | null, ids?: TokenIdsExtra, lp?: LogprobEntry[]) => {
    const out = {
      ...base,
      choices: [{ index, text, logprobs: wireLogprobs(index, lp), finish_reason: finish, ...idsOnChoice(ids, true) }],
      ...(includeUsage ? { usage: null } : {}),
    };
    if (logprobs) sent.set(index, (sent.get(index) ?? 0) + text.length);
    return out;
  };
  const plainText = textTemplate((index, text) => chunk(index, text, null));
  return {
    start: () => null,
    text: (index, text, ids, lp) => (ids || lp || logprobs ? JSON.stringify(chunk(index, text, null, ids, lp)) : plainText(index, text)),
    toolCallStart: () => {
      throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
    },
    toolCallArguments: () => {
      throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
    },
    finish: (index, reason, ids, lp, timings) => JSON.stringify({ ...chunk(index, "", reason, ids, lp), ...(timings ? { timings } : {}) }),
    usage: (usage, timings) => JSON.stringify({ ...base, choices: [], usage: usageToWire(usage), ...(timings ? { timings } : {}) }),
    whole: (choices, usage, timings) => {
      if (choices.some((c) => c.toolCalls.length > 0)) {
        throw new TabAgentError("The engine produced a tool call for a text completion, which has no place for one.");
      }
      return {
        ...base,
        choices: choices.map((c) => ({
          index: c.index,
          text: c.text,
          logprobs: c.logprobs || logprobs ? completionLogprobsToWire(c.logprobs ?? [], c.textOffsets ?? []) : null,
          finish_reason: c.finishReason ?? "stop",
          ...(c.promptTokenIds ? { prompt_token_ids: c.promptTokenIds } : {}),
          ...(c.tokenIds ? { token_ids: c.tokenIds } : {}),
        })),
        usage: usageToWire(usage),
        ...(timings ? { timings } : {}),
      };
    },
  };
}
