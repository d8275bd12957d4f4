import { z } from "zod";
import { CAPABILITIES, type Capability } from "../../engines/capabilities.js";
import { detectedTaskSchema, engineNameSchema, modelFormatSchema } from "../../core/detectionSchema.js";
import { timingsSchema } from "./managementSchemas.js";

/**
 * What the daemon answers, as zod schemas, for the OpenAPI document. They mirror responseFormatters.ts,
 * openaiRoutes.ts and buildApp.ts; test/api/openapi checks real responses against them, so a change there that
 * is not made here fails a test. They are documentation: no response is validated at run time.
 */

const int = () => z.number().int();
const unixSeconds = () => int().nonnegative().meta({ description: "Unix time in seconds." });

const finishReasonSchema = z.enum(["stop", "length", "tool_calls", "content_filter"]).meta({
  description: "`stop`: the model ended its turn or a stop sequence matched; `length`: max_tokens or the context ran out.",
});

export const usageSchema = z.object({
  prompt_tokens: int().nonnegative(),
  completion_tokens: int().nonnegative(),
  total_tokens: int().nonnegative(),
});

export const chatCompletionResponseSchema = z.object({
  id: z.string().meta({ description: "`chatcmpl-…`" }),
  object: z.literal("chat.completion"),
  created: unixSeconds(),
  model: z.string(),
  system_fingerprint: z.null(),
  choices: z.array(
    z.object({
      index: int().nonnegative(),
      message: z.object({ role: z.literal("assistant"), content: z.string(), refusal: z.null() }),
      logprobs: z.null(),
      finish_reason: finishReasonSchema,
    }),
  ),
  usage: usageSchema,
  timings: timingsSchema.optional(),
});

export const chatCompletionChunkSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion.chunk"),
  created: unixSeconds(),
  model: z.string(),
  system_fingerprint: z.null(),
  choices: z
    .array(
      z.object({
        index: int().nonnegative(),
        delta: z.object({ role: z.literal("assistant").optional(), content: z.string().optional() }),
        logprobs: z.null(),
        finish_reason: finishReasonSchema.nullable(),
      }),
    )
    .meta({ description: "Empty in the final usage chunk." }),
  usage: usageSchema.nullable().optional().meta({ description: "Only with stream_options.include_usage: null on every chunk but the last." }),
  timings: timingsSchema.optional().meta({ description: "With `timings`: on the final chunk only." }),
});

export const completionResponseSchema = z.object({
  id: z.string().meta({ description: "`cmpl-…`" }),
  object: z.literal("text_completion"),
  created: unixSeconds(),
  model: z.string(),
  system_fingerprint: z.null(),
  choices: z.array(
    z.object({
      index: int().nonnegative().meta({ description: "The prompt's position when `prompt` is an array." }),
      text: z.string(),
      logprobs: z.null(),
      finish_reason: finishReasonSchema,
    }),
  ),
  usage: usageSchema,
  timings: timingsSchema.optional(),
});

export const completionChunkSchema = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: unixSeconds(),
  model: z.string(),
  system_fingerprint: z.null(),
  choices: z.array(
    z.object({
      index: int().nonnegative(),
      text: z.string(),
      logprobs: z.null(),
      finish_reason: finishReasonSchema.nullable(),
    }),
  ),
  usage: usageSchema.nullable().optional(),
  timings: timingsSchema.optional().meta({ description: "With `timings`: on the final chunk only." }),
});

export const embeddingResponseSchema = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      object: z.literal("embedding"),
      index: int().nonnegative(),
      embedding: z.union([z.array(z.number()), z.string()]).meta({
        description: "L2-normalised floats, or with encoding_format=base64 the little-endian float32 bytes in base64.",
      }),
    }),
  ),
  model: z.string(),
  usage: z.object({ prompt_tokens: int().nonnegative(), total_tokens: int().nonnegative() }),
});

const capabilitiesSchema = z.array(z.enum(Object.keys(CAPABILITIES) as [Capability, ...Capability[]])).meta({
  description: "What the model's engine supports (the engine table's capabilities); a request using anything else is a 400 `unsupported_parameter`.",
});

const runnerStateSchema = z.enum(["unloaded", "loading", "loaded", "unloading", "downloading", "download-failed"]);

/** The `tabagent` extension of a model served by this daemon: what detection found. */
export const localModelExtensionSchema = z.object({
  format: modelFormatSchema,
  task: detectedTaskSchema,
  task_reason: z
    .string()
    .meta({ description: "Why this format and task, in one line (`config.json architectures[0] = …`, `bert.pooling_type = 4 (rank): a reranker`)." }),
  engine: engineNameSchema.nullable().meta({ description: "null when nothing may serve the model (`warnings` says why)." }),
  engine_reason: z.string().nullable(),
  alternatives: z.array(engineNameSchema),
  capabilities: capabilitiesSchema,
  loaded: z.boolean(),
  state: runnerStateSchema,
  architecture: z.string().nullable(),
  parameters: int().nonnegative().nullable(),
  quantization: z.string().nullable(),
  context_length: int().positive().nullable(),
  chat_template: z.boolean(),
  size_bytes: int().nonnegative(),
  warnings: z.array(z.string()),
  alias_of: z.string().optional().meta({ description: "Set when this id is an alias (config `aliases`) of another model." }),
  download: z
    .object({ done_bytes: int().nonnegative(), total_bytes: int().nonnegative(), error: z.string().nullable() })
    .optional()
    .meta({ description: "Set while the model is being pulled from the hub (state `downloading`), or after its pull failed." }),
});

/** The `tabagent` extension of a model that lives on an upstream OpenAI-compatible server. */
export const upstreamModelExtensionSchema = z.object({
  format: z.literal("upstream"),
  engine: z.literal("upstream"),
  upstream: z.string().meta({ description: "The upstream's configured name." }),
  upstream_model: z.string().meta({ description: "The model's id on the upstream." }),
  capabilities: capabilitiesSchema,
  base_url: z.string(),
  state: runnerStateSchema,
});

export const modelSchema = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: unixSeconds(),
  owned_by: z.string().meta({ description: "`tabagent`, or the upstream's name." }),
  tabagent: z.union([localModelExtensionSchema, upstreamModelExtensionSchema]),
});

export const modelListSchema = z.object({ object: z.literal("list"), data: z.array(modelSchema) });

export const errorEnvelopeSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string().meta({ description: "`invalid_request_error`, `not_found_error`, `rate_limit_error`, `service_unavailable_error`, `server_error`, ..." }),
    param: z.string().nullable().meta({ description: "The offending parameter's path, as `messages[0].content`." }),
    code: z.string().nullable(),
  }),
});

export const healthSchema = z.object({
  status: z.literal("ok"),
  version: z.string().optional().meta({ description: "The daemon's version (tabagent's package version)." }),
  models: z.array(z.object({ id: z.string(), state: runnerStateSchema, running: int().nonnegative(), queued: int().nonnegative() })),
  loaded: z.array(z.string()),
  upstreams: z.array(
    z.object({
      name: z.string(),
      base_url: z.string().optional().meta({ description: "Only for a caller with an API key, or on a loopback-only daemon without keys." }),
      state: z.enum(["up", "down", "unknown"]),
      error: z.string().nullable().optional().meta({ description: "Why the upstream is down; shown with `base_url` only." }),
    }),
  ),
});

export const readySchema = z.object({ status: z.literal("ready") });
