import type { ActionContext } from "./hostActions.js";
import { HostError } from "./HostError.js";

interface Choice {
  index: number;
  text: string;
  finish_reason: string | null;
  tool_calls?: ToolCall[];
}

interface ToolCall {
  index: number;
  id?: string;
  type?: string;
  function: { name?: string; arguments: string };
}

/** Folds streamed tool-call deltas (by their index) into whole calls, as the non-streamed answer has them. */
function mergeToolCalls(calls: ToolCall[], deltas: unknown[]): void {
  for (const raw of deltas) {
    const d = raw as { index?: number; id?: string; type?: string; function?: { name?: string; arguments?: string } };
    const index = d.index ?? calls.length;
    let call = calls.find((c) => c.index === index);
    if (!call) calls.push((call = { index, function: { arguments: "" } }));
    if (d.id) call.id = d.id;
    if (d.type) call.type = d.type;
    if (d.function?.name) call.function.name = (call.function.name ?? "") + d.function.name;
    if (d.function?.arguments) call.function.arguments += d.function.arguments;
  }
}

interface StreamChunk {
  model?: string;
  choices?: { index?: number; delta?: { content?: string | null; tool_calls?: unknown[] }; text?: string; finish_reason?: string | null; logprobs?: unknown }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  error?: { message?: string; code?: string | null; type?: string; param?: string | null };
}

/**
 * Relays a chat or completions request. Streamed (the default): each piece of text is a `token` event
 * `{index, text, tokens, tokens_per_second}` (tool-call deltas a `tool_calls` event), and the reply holds each
 * choice's whole text and finish reason, the usage and the timings. `stream: false`: the reply is the daemon's
 * completion object. Cancelling (the `cancel` action, or the browser leaving) aborts the HTTP request, which the
 * daemon answers by stopping the generation.
 */
export async function relayGeneration(kind: "chat" | "completions", params: Record<string, unknown>, ctx: ActionContext): Promise<unknown> {
  const path = kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
  if ("stream_options" in params) {
    throw new HostError("invalid_request", "stream_options is set by the host (usage always comes in the reply)", { param: "stream_options" });
  }
  if (params.stream !== undefined && typeof params.stream !== "boolean") throw new HostError("invalid_request", "stream must be a boolean", { param: "stream" });
  const client = await ctx.daemon();
  if (params.stream === false) return client.json("POST", path, params, ctx.signal);

  const started = performance.now();
  let firstAt: number | null = null;
  let pieces = 0;
  let model: string | undefined;
  let usage: StreamChunk["usage"] = null;
  const choices = new Map<number, Choice>();
  const choice = (index: number): Choice => {
    let c = choices.get(index);
    if (!c) choices.set(index, (c = { index, text: "", finish_reason: null }));
    return c;
  };
  for await (const { data } of client.stream("POST", path, { ...params, stream: true, stream_options: { include_usage: true } }, ctx.signal)) {
    const chunk = data as StreamChunk;
    if (chunk.error) {
      const e = chunk.error;
      throw new HostError(e.code ?? e.type ?? "server_error", e.message ?? "the generation failed", { param: e.param ?? undefined });
    }
    model ??= chunk.model;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      const index = c.index ?? 0;
      const target = choice(index);
      const text = kind === "chat" ? c.delta?.content : c.text;
      if (text) {
        const now = performance.now();
        firstAt ??= now;
        pieces++;
        target.text += text;
        const seconds = (now - firstAt) / 1000;
        await ctx.emit("token", {
          index,
          text,
          tokens: pieces,
          tokens_per_second: seconds > 0 ? Math.round(((pieces - 1) / seconds) * 100) / 100 : null,
          ...(c.logprobs ? { logprobs: c.logprobs } : {}),
        });
      }
      if (kind === "chat" && c.delta?.tool_calls) {
        mergeToolCalls((target.tool_calls ??= []), c.delta.tool_calls);
        await ctx.emit("tool_calls", { index, tool_calls: c.delta.tool_calls });
      }
      if (c.finish_reason) target.finish_reason = c.finish_reason;
    }
  }
  const ended = performance.now();
  const decodeSeconds = firstAt === null ? 0 : (ended - firstAt) / 1000;
  const completionTokens = usage?.completion_tokens ?? pieces;
  return {
    model: model ?? null,
    choices: [...choices.values()].sort((a, b) => a.index - b.index),
    usage: usage ?? null,
    timings: {
      time_to_first_token_ms: firstAt === null ? null : Math.round((firstAt - started) * 100) / 100,
      total_ms: Math.round((ended - started) * 100) / 100,
      // Tokens after the first over the time since it: the decode rate, without the prompt's evaluation.
      tokens_per_second: decodeSeconds > 0 && completionTokens > 1 ? Math.round(((completionTokens - 1) / decodeSeconds) * 100) / 100 : null,
    },
  };
}
