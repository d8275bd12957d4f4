import { UnsupportedParameterError } from "../../core/errors.js";
import type { Capability, RequestedFeature } from "../../engines/capabilities.js";
import type { ChatCompletionBody } from "./chatCompletionSchema.js";
import type { CompletionBody } from "./completionSchema.js";
import type { EmbeddingBody } from "./embeddingSchema.js";

/**
 * The features a request asks for, from its wire body, each with the parameter that asked. Defaults that change
 * nothing (n: 1, logprobs: false, response_format text, empty tools, `none`/`auto` choices) ask for nothing.
 * checkCapabilities holds the list against the serving engine; one list per endpoint, so a new OpenAI parameter
 * is mapped to a capability here and nowhere else.
 */
type Shared = Pick<ChatCompletionBody, "n" | "logit_bias" | "response_format" | "tools" | "tool_choice" | "functions" | "function_call" | "return_token_ids"> & {
  /** Chat: a boolean; completions: a count, where 0 still asks for the chosen tokens' logprobs. */
  logprobs?: boolean | number | null | undefined;
  top_logprobs?: unknown;
};

const PART_CAPABILITY: Record<string, Capability> = { image_url: "images", input_audio: "audio", file: "files" };

const nonEmpty = (v: unknown) => (Array.isArray(v) ? v.length > 0 : v != null);
const choosesSomething = (v: unknown) => v != null && v !== "none" && v !== "auto";

function sharedFeatures(body: Shared): RequestedFeature[] {
  const out: RequestedFeature[] = [];
  const add = (capability: Capability, param: string) => out.push({ capability, param });
  if (body.n != null && body.n > 1) add("multipleChoices", "n");
  const lp = body.logprobs;
  if (lp != null && lp !== false) add("logprobs", "logprobs");
  if (body.top_logprobs != null && body.top_logprobs !== 0) add("logprobs", "top_logprobs");
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) add("logitBias", "logit_bias");
  if (body.response_format?.type === "json_object") add("jsonObject", "response_format");
  if (body.response_format?.type === "json_schema") add("jsonSchema", "response_format");
  if (nonEmpty(body.tools)) add("tools", "tools");
  if (choosesSomething(body.tool_choice)) add("tools", "tool_choice");
  // The deprecated spellings answer with a different response shape (message.function_call): refused by name.
  if (nonEmpty(body.functions)) throw new UnsupportedParameterError("functions", "is the deprecated form of 'tools'; send 'tools'");
  if (choosesSomething(body.function_call)) throw new UnsupportedParameterError("function_call", "is the deprecated form of 'tool_choice'; send 'tool_choice'");
  if (body.return_token_ids === true) add("tokenIds", "return_token_ids");
  return out;
}

export function chatFeatures(body: ChatCompletionBody): RequestedFeature[] {
  const out = sharedFeatures(body);
  const add = (capability: Capability, param: string) => out.push({ capability, param });
  body.messages.forEach((m, i) => {
    if (m.role === "tool") add("tools", `messages[${i}].role`);
    if (m.role === "assistant" && m.tool_calls && m.tool_calls.length > 0) add("tools", `messages[${i}].tool_calls`);
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part.type === "text") return;
      const param = `messages[${i}].content[${j}]`;
      const capability = Object.hasOwn(PART_CAPABILITY, part.type) ? PART_CAPABILITY[part.type] : undefined;
      if (!capability) throw new UnsupportedParameterError(param, `has content of type '${part.type}', which is not a known content part type`);
      add(capability, param);
    });
  });
  if (body.modalities && body.modalities.some((m) => m !== "text")) add("audio", "modalities");
  if (body.audio != null) add("audio", "audio");
  if (body.prediction != null) add("prediction", "prediction");
  if (body.reasoning_effort != null) add("reasoning", "reasoning_effort");
  return out;
}

export function completionFeatures(body: CompletionBody): RequestedFeature[] {
  // Tools and JSON modes belong to chat: a completion has no message to carry a call or a format.
  for (const param of ["tools", "tool_choice", "response_format"] as const) {
    const value = body[param];
    const neutral =
      value == null ||
      (Array.isArray(value) && value.length === 0) ||
      value === "none" ||
      value === "auto" ||
      (typeof value === "object" && "type" in value && value.type === "text");
    if (!neutral) throw new UnsupportedParameterError(param, "applies to /v1/chat/completions only");
  }
  const out = sharedFeatures(body);
  if (body.best_of != null && body.best_of > 1) out.push({ capability: "multipleChoices", param: "best_of" });
  if (body.suffix) out.push({ capability: "suffix", param: "suffix" });
  return out;
}

export function embeddingFeatures(body: EmbeddingBody): RequestedFeature[] {
  return body.dimensions != null ? [{ capability: "embeddingDimensions", param: "dimensions" }] : [];
}

/**
 * Capabilities the API layer turns into internal requests today. A feature an engine declares but the API does not
 * translate yet is refused here too, so flipping an engine's flag can never make a parameter silently ignored.
 */
const TRANSLATED: ReadonlySet<Capability> = new Set<Capability>([
  "chat",
  "completions",
  "embeddings",
  "tokenIds",
  "tools",
  "jsonObject",
  "jsonSchema",
  "logprobs",
  "multipleChoices",
]);

export function assertTranslated(features: readonly RequestedFeature[]): void {
  const missing = features.find((f) => !TRANSLATED.has(f.capability));
  if (missing) throw new UnsupportedParameterError(missing.param, "is not supported by this server's API layer yet");
}
