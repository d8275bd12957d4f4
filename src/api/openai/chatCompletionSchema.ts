import { z } from "zod";
import { InvalidRequestError, UnsupportedParameterError } from "../../core/errors.js";
import type { ChatMessage, ChatRequest } from "../../core/types.js";
import { generationParamsShape, toGenerationOptions } from "./generationParams.js";
import { assertTranslated, chatFeatures } from "./requestedFeatures.js";
import { toolCallSchema, toResponseFormat, toTools } from "./toolSchemas.js";

const textPart = z.object({ type: z.literal("text"), text: z.string() });
/** Other part types (image_url, input_audio, file) are recognised so the error can name them. */
const contentPart = z.union([textPart, z.object({ type: z.string() }).loose()]);
const content = z.union([z.string(), z.array(contentPart)]);

const message = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content, name: z.string().optional() }),
  z.object({ role: z.literal("developer"), content, name: z.string().optional() }),
  z.object({ role: z.literal("user"), content, name: z.string().optional() }),
  z.object({
    role: z.literal("assistant"),
    content: content.nullable().optional(),
    name: z.string().optional(),
    tool_calls: z.array(toolCallSchema).max(128).optional(),
    refusal: z.string().nullable().optional(),
  }),
  z.object({ role: z.literal("tool"), content, tool_call_id: z.string() }),
  z.object({ role: z.literal("function"), content: z.string().nullable(), name: z.string() }),
]);

export const chatCompletionBodySchema = z.object({
  ...generationParamsShape,
  messages: z.array(message).min(1, "must contain at least one message"),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  store: z.unknown().optional(),
  modalities: z.array(z.string()).nullable().optional(),
  audio: z.unknown().optional(),
  prediction: z.unknown().optional(),
  reasoning_effort: z.unknown().optional(),
  service_tier: z.unknown().optional(),
  /** tabagent: llama-server's `timings` object on the answer (or the stream's final chunk); on for all with config `timings`. */
  timings: z.boolean().nullable().optional(),
});
export type ChatCompletionBody = z.infer<typeof chatCompletionBodySchema>;

function flattenContent(c: z.infer<typeof content> | null | undefined, param: string): string {
  if (c == null) return "";
  if (typeof c === "string") return c;
  return c
    .map((part, i) => {
      if (part.type === "text" && typeof part.text === "string") return part.text;
      throw new UnsupportedParameterError(`${param}[${i}]`, `has content of type '${part.type}', which is not supported yet (text only)`);
    })
    .join("");
}

/** Wire body → internal ChatRequest; a feature it does not translate yet is refused, never dropped. */
export function toChatRequest(body: ChatCompletionBody): ChatRequest {
  assertTranslated(chatFeatures(body));
  // Tool results must answer a call made earlier in the conversation.
  const calls = new Set<string>();
  const messages: ChatMessage[] = body.messages.map((m, i) => {
    const param = `messages[${i}].content`;
    switch (m.role) {
      case "system":
      case "developer":
        return { role: "system", content: flattenContent(m.content, param) };
      case "user":
        return { role: "user", content: flattenContent(m.content, param) };
      case "assistant": {
        const toolCalls = (m.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
        for (const c of toolCalls) calls.add(c.id);
        return { role: "assistant", content: flattenContent(m.content, param), ...(toolCalls.length > 0 ? { toolCalls } : {}) };
      }
      case "tool":
        if (!calls.has(m.tool_call_id)) {
          throw new InvalidRequestError(`'messages[${i}].tool_call_id' is '${m.tool_call_id}', which no earlier assistant tool call has.`, {
            param: `messages[${i}].tool_call_id`,
            code: "invalid_value",
          });
        }
        return { role: "tool", content: flattenContent(m.content, param), toolCallId: m.tool_call_id };
      case "function":
        throw new UnsupportedParameterError(`messages[${i}].role`, "'function' is the deprecated form of tool results; send 'tool' messages");
    }
  });
  if (messages.every((m) => m.role === "system")) {
    throw new InvalidRequestError("'messages' must contain at least one user or assistant message.", { param: "messages" });
  }
  if (body.logprobs !== true && body.top_logprobs != null && body.top_logprobs > 0) {
    throw new InvalidRequestError("'top_logprobs' requires 'logprobs' to be true.", { param: "top_logprobs", code: "invalid_value" });
  }
  const { tools, toolChoice } = toTools(body.tools, body.tool_choice);
  return {
    model: body.model,
    messages,
    tools,
    toolChoice,
    parallelToolCalls: body.parallel_tool_calls ?? true,
    ...toGenerationOptions(body),
    logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
    responseFormat: toResponseFormat(body.response_format),
  };
}
