import { z } from "zod";
import { UnsupportedParameterError } from "../../core/errors.js";
import type { GenerationOptions } from "../../core/types.js";

const nullable = <T extends z.ZodType>(t: T) => t.nullable().optional();

/** Sampling and output fields shared by /v1/chat/completions and /v1/completions. */
export const generationParamsShape = {
  model: z.string().min(1, "must be a model id"),
  stream: nullable(z.boolean()),
  stream_options: nullable(z.object({ include_usage: nullable(z.boolean()) })),
  max_tokens: nullable(z.number().int().min(1)),
  temperature: nullable(z.number().min(0).max(2)),
  top_p: nullable(z.number().gt(0).max(1)),
  seed: nullable(z.number().int().min(-(2 ** 53)).max(2 ** 53)),
  stop: nullable(z.union([z.string(), z.array(z.string()).max(16)])),
  presence_penalty: nullable(z.number().min(-2).max(2)),
  frequency_penalty: nullable(z.number().min(-2).max(2)),
  n: nullable(z.number().int().min(1).max(128)),
  logprobs: z.unknown().optional(),
  top_logprobs: z.unknown().optional(),
  logit_bias: nullable(z.record(z.string(), z.number())),
  response_format: nullable(z.object({ type: z.string() }).loose()),
  tools: z.unknown().optional(),
  tool_choice: z.unknown().optional(),
  /** The deprecated spelling of tools; refused like them, on completions too. */
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
  user: z.unknown().optional(),
  metadata: z.unknown().optional(),
  /** vLLM's extension: the prompt's and the answer's token ids in the response. */
  return_token_ids: nullable(z.boolean()),
};

type WireGeneration = {
  max_tokens?: number | null | undefined;
  max_completion_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
  n?: number | null | undefined;
  logprobs?: unknown;
  top_logprobs?: unknown;
  logit_bias?: Record<string, number> | null | undefined;
  response_format?: { type: string } | null | undefined;
  tools?: unknown;
  tool_choice?: unknown;
  functions?: unknown;
  function_call?: unknown;
  return_token_ids?: boolean | null | undefined;
};

/**
 * Refuses parameters that would change results but are not implemented yet: never silently ignore them.
 * Harmless defaults (n: 1, logprobs: false, response_format text, empty tools or functions, `none`/`auto` choices) pass.
 */
export function rejectUnsupported(body: WireGeneration, logprobsIsNumber = false): void {
  if (body.n != null && body.n > 1) throw new UnsupportedParameterError("n", "greater than 1 is not supported yet");
  const lp = body.logprobs;
  if (lp != null && lp !== false && !(logprobsIsNumber && lp === 0)) throw new UnsupportedParameterError("logprobs");
  if (body.top_logprobs != null && body.top_logprobs !== 0) throw new UnsupportedParameterError("top_logprobs");
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) throw new UnsupportedParameterError("logit_bias");
  if (body.response_format && body.response_format.type !== "text") {
    throw new UnsupportedParameterError("response_format", `of type '${body.response_format.type}' is not supported yet`);
  }
  if (Array.isArray(body.tools) ? body.tools.length > 0 : body.tools != null) throw new UnsupportedParameterError("tools");
  if (body.tool_choice != null && body.tool_choice !== "none" && body.tool_choice !== "auto") {
    throw new UnsupportedParameterError("tool_choice");
  }
  // No engine calls functions yet: the legacy fields get the same answer as `tools`, on chat and completions alike.
  if (Array.isArray(body.functions) ? body.functions.length > 0 : body.functions != null) throw new UnsupportedParameterError("functions");
  if (body.function_call != null && body.function_call !== "none" && body.function_call !== "auto") {
    throw new UnsupportedParameterError("function_call");
  }
}

export function toGenerationOptions(body: WireGeneration): GenerationOptions {
  const stop = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    sampling: {
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? undefined,
      seed: body.seed ?? undefined,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      stop: stop.filter((s) => s.length > 0),
    },
    n: 1,
    responseFormat: { type: "text" },
    logprobs: null,
    returnTokenIds: body.return_token_ids ?? false,
  };
}
