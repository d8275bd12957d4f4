import { randomInt } from "node:crypto";
import { z } from "zod";
import { responseFormatSchema, toolChoiceSchema, toolSchema } from "./toolSchemas.js";
import type { GenerationOptions } from "../../core/types.js";
import { refuseExtensions, refusedExtensionsShape, samplerExtensionsShape, toSamplerExtensions, type WireSamplerExtensions } from "./samplerExtensions.js";

const nullable = <T extends z.ZodType>(t: T) => t.nullable().optional();

/** The most choices (`n`) one request may ask for. */
export const MAX_CHOICES = 16;

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
  n: nullable(z.number().int().min(1).max(MAX_CHOICES)),
  logprobs: z.unknown().optional(),
  top_logprobs: z.unknown().optional(),
  logit_bias: nullable(z.record(z.string(), z.number())),
  response_format: nullable(responseFormatSchema),
  tools: nullable(z.array(toolSchema).max(128)),
  tool_choice: nullable(toolChoiceSchema),
  /** The deprecated spelling of tools; refused like them, on completions too. */
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
  user: z.unknown().optional(),
  metadata: z.unknown().optional(),
  /** vLLM's extension: the prompt's and the answer's token ids in the response. */
  return_token_ids: nullable(z.boolean()),
  /** llama.cpp / vLLM samplers: top_k, min_p, repeat_penalty (repetition_penalty). */
  ...samplerExtensionsShape,
  /** Other servers' extensions, each refused by name unless neutral (see REFUSED_EXTENSIONS). */
  ...refusedExtensionsShape,
};

type WireGeneration = WireSamplerExtensions & {
  max_tokens?: number | null | undefined;
  max_completion_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
  return_token_ids?: boolean | null | undefined;
  n?: number | null | undefined;
};

/**
 * A seed for a request that gives none: fresh per request, so back-to-back requests at temperature > 0 differ (an
 * engine left to pick its own, node-llama-cpp, would use the current second). Below 2^32 - 1, which llama.cpp
 * reads as "pick one yourself".
 */
export function freshSeed(): number {
  return randomInt(0, 0xffff_ffff);
}

export function toGenerationOptions(body: WireGeneration): GenerationOptions {
  refuseExtensions(body);
  const stop = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    sampling: {
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? undefined,
      seed: body.seed ?? freshSeed(),
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      stop: stop.filter((s) => s.length > 0),
      ...toSamplerExtensions(body),
    },
    n: body.n ?? 1,
    responseFormat: { type: "text" },
    logprobs: null,
    returnTokenIds: body.return_token_ids ?? false,
  };
}
