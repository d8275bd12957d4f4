import { z } from "zod";
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
  seed: nullable(
    z
      .number()
      .int()
      .min(-(2 ** 53))
      .max(2 ** 53),
  ),
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
  return_token_ids?: boolean | null | undefined;
};

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
