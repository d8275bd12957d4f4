import { randomBytes } from "node:crypto";
import type { ChatMessage, ChatRequest, GenerationChunk, ToolDefinition } from "../../core/types.js";

/**
 * Tool calling for engines that render the chat template themselves (node-llama-cpp today). A template that reads
 * `tools` renders them its own way; for one that does not, tools are described in a system message and calls use
 * the Hermes convention most open models were trained on: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
 * A forced call (`required`, a named function) is generated under a grammar as that JSON object alone.
 */
const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

export type ToolMode = "none" | "auto" | "forced";

export function toolMode(request: ChatRequest): ToolMode {
  if (request.tools.length === 0 || request.toolChoice.type === "none") return "none";
  return request.toolChoice.type === "auto" ? "auto" : "forced";
}

/** Whether a template renders tools itself (it reads the `tools` variable). */
export function templateReadsTools(source: string): boolean {
  return /\btools\b/.test(source);
}

/** Tools as the OpenAI API spells them: what templates that read `tools` expect. */
export function toolsForTemplate(tools: readonly ToolDefinition[]): object[] {
  return tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description ?? "", parameters: t.parameters } }));
}

/**
 * The conversation for a template that knows nothing of tools: the tool list in a system message, earlier calls as
 * `<tool_call>` blocks in the assistant's text, tool results as `<tool_response>` blocks from the user.
 */
export function messagesWithTools(messages: readonly ChatMessage[], tools: readonly ToolDefinition[], mode: ToolMode): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (mode !== "none") {
    const list = tools.map((t) => JSON.stringify({ name: t.name, description: t.description ?? "", parameters: t.parameters })).join("\n");
    const system =
      `You can call these functions:\n${list}\n` +
      `To call one, answer with ${OPEN}{"name": <function name>, "arguments": <arguments object>}${CLOSE}, one block per call.`;
    const first = messages[0];
    if (first?.role === "system") out.push({ role: "system", content: `${first.content}\n\n${system}` });
    else out.push({ role: "system", content: system });
  }
  for (const [i, m] of messages.entries()) {
    if (i === 0 && m.role === "system" && mode !== "none") continue;
    if (m.role === "tool") out.push({ role: "user", content: `<tool_response>\n${m.content}\n</tool_response>` });
    else if (m.role === "assistant" && m.toolCalls?.length) {
      const calls = m.toolCalls.map((c) => `${OPEN}\n${JSON.stringify({ name: c.name, arguments: parseOr(c.arguments) })}\n${CLOSE}`).join("\n");
      out.push({ role: "assistant", content: m.content ? `${m.content}\n${calls}` : calls });
    } else out.push(m);
  }
  return out;
}

/** The JSON Schema of one forced call: `{"name": ..., "arguments": ...}` for the named function, or any of them. */
export function forcedCallSchema(request: ChatRequest): Record<string, unknown> {
  const choice = request.toolChoice;
  const tools = choice.type === "function" ? request.tools.filter((t) => t.name === choice.name) : request.tools;
  const one = (t: ToolDefinition) => ({
    type: "object",
    properties: { name: { const: t.name }, arguments: t.parameters },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  return tools.length === 1 ? one(tools[0]!) : { oneOf: tools.map(one) };
}

export function newToolCallId(): string {
  return `call_${randomBytes(12).toString("base64url")}`;
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A call's JSON, when it names one of the tools; its arguments as a JSON string. */
function readCall(json: string, tools: readonly ToolDefinition[]): { name: string; arguments: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object") return null;
  const { name, arguments: args } = value as { name?: unknown; arguments?: unknown };
  if (typeof name !== "string" || !tools.some((t) => t.name === name)) return null;
  return { name, arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}) };
}

/**
 * Turns a generation's text into tool calls. `forced`: the whole answer is one call's JSON (grammar-constrained).
 * `auto`: `<tool_call>` blocks become calls, the text around them stays text; text that could be the start of a
 * block is held back until it is known not to be one. A block that is not a valid call of a declared tool stays
 * text, as the model wrote it. A choice that made calls and stopped finishes with `tool_calls`.
 */
export async function* withToolCalls(
  chunks: AsyncIterable<GenerationChunk>,
  mode: ToolMode,
  tools: readonly ToolDefinition[],
  parallel = true,
): AsyncGenerator<GenerationChunk> {
  if (mode === "none") {
    yield* chunks;
    return;
  }
  let pending = "";
  let inside = false;
  let calls = 0;
  // parallel_tool_calls false: the answer is over after its first call; what the model writes after it is dropped.
  const closed = () => !parallel && calls > 0;
  const call = (index: number, c: { name: string; arguments: string }): GenerationChunk => ({
    type: "tool_call",
    index,
    callIndex: calls++,
    id: newToolCallId(),
    name: c.name,
    arguments: c.arguments,
  });
  for await (const chunk of chunks) {
    if (chunk.type === "text" || chunk.type === "logprobs" || chunk.type === "token_ids") {
      if (closed()) continue;
    }
    if (chunk.type === "text") {
      pending += chunk.text;
      if (mode === "forced") continue;
      for (;;) {
        if (!inside) {
          const at = pending.indexOf(OPEN);
          if (at >= 0) {
            if (at > 0) yield { type: "text", index: chunk.index, text: pending.slice(0, at) };
            pending = pending.slice(at);
            inside = true;
            continue;
          }
          const keep = partialPrefix(pending, OPEN);
          const out = pending.slice(0, pending.length - keep);
          if (out) yield { type: "text", index: chunk.index, text: out };
          pending = pending.slice(pending.length - keep);
          break;
        }
        const end = pending.indexOf(CLOSE);
        if (end < 0) break;
        const block = pending.slice(0, end + CLOSE.length);
        const parsed = readCall(block.slice(OPEN.length, end).trim(), tools);
        yield parsed ? call(chunk.index, parsed) : { type: "text", index: chunk.index, text: block };
        pending = pending.slice(end + CLOSE.length).replace(/^\s+/, "");
        inside = false;
        if (closed()) {
          pending = "";
          break;
        }
      }
      continue;
    }
    if (chunk.type === "finish") {
      if (mode === "forced") {
        const parsed = readCall(pending.trim(), tools);
        if (parsed) yield call(chunk.index, parsed);
        else if (pending) yield { type: "text", index: chunk.index, text: pending };
      } else if (pending && !closed()) yield { type: "text", index: chunk.index, text: pending };
      pending = "";
      yield calls > 0 && chunk.reason === "stop" ? { ...chunk, reason: "tool_calls" } : chunk;
      continue;
    }
    yield chunk;
  }
}

/** How many characters at the end of `text` could begin `marker`. */
function partialPrefix(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) if (marker.startsWith(text.slice(-n))) return n;
  return 0;
}
