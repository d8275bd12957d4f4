import { z } from "zod";

/**
 * The management API's answers (docs/api.md "Management API") as zod schemas, for the OpenAPI document; they
 * mirror src/api/management, and test/api/management checks real responses against them.
 */

const int = () => z.number().int();
const bytes = () => int().nonnegative();

export const timingsSchema = z
  .object({
    prompt_n: int().nonnegative(),
    prompt_ms: z.number().nonnegative(),
    prompt_per_second: z.number().nonnegative(),
    predicted_n: int().nonnegative(),
    predicted_ms: z.number().nonnegative(),
    predicted_per_second: z.number().nonnegative(),
  })
  .meta({
    description:
      "llama-server's timings, measured by the daemon on every engine: prompt from the engine taking the request to its first token, predicted from there to the last. Only when the request sets `timings: true` (or the config `timings`).",
  });

export const managedModelSchema = z.object({
  id: z.string(),
  format: z.string(),
  task: z.string(),
  engine: z.string().nullable(),
  engine_reason: z.string().nullable().meta({ description: "Why detection chose this engine." }),
  alternatives: z.array(z.string()),
  capabilities: z.array(z.string()),
  state: z.string().meta({ description: "`unloaded`, `loading`, `loaded`, `unloading`, or `downloading` / `download-failed` for a configured hub model." }),
  running: int().nonnegative(),
  queued: int().nonnegative(),
  origin: z.enum(["config", "models-dir", "store", "lmstudio", "ollama", "upstream", "alias"]),
  removable: z.boolean().meta({ description: "True for models pulled into the store: what DELETE accepts." }),
  path: z.string().nullable(),
  architecture: z.string().nullable(),
  parameters: z.number().nullable(),
  quantization: z.string().nullable(),
  context_length: z.number().nullable(),
  chat_template: z.boolean(),
  size_bytes: bytes(),
  memory_bytes: bytes().meta({ description: "Estimated resident size when loaded (weights and KV cache), as the memory budget counts it." }),
  warnings: z.array(z.string()),
  upstream: z.string().optional(),
  upstream_model: z.string().optional(),
  chat_template_error: z.string().optional(),
  runtime: z.record(z.string(), z.unknown()).optional(),
  alias_of: z.string().optional(),
  download: z.object({ done_bytes: bytes(), total_bytes: bytes(), error: z.string().nullable() }).optional(),
});

export const managedModelListSchema = z.object({ models: z.array(managedModelSchema) });

export const pullRequestSchema = z.object({
  source: z.string().min(1).max(1024).meta({ description: "`owner/name[@revision][:file-or-quant]`, as `tabagent pull` takes it." }),
  stream: z.boolean().optional().meta({ description: "Default true: progress as server-sent events. false: one JSON answer once done." }),
});

export const pullEventSchema = z
  .object({
    type: z.enum(["resolved", "file", "progress", "retry", "waiting", "file_done", "done", "error"]),
    path: z.string().optional(),
    done_bytes: bytes().optional(),
    total_bytes: bytes().optional(),
    bytes_per_second: z.number().nullable().optional(),
    eta_seconds: z.number().nullable().optional(),
  })
  .loose()
  .meta({ description: "One pull event; the fields of each `type` are listed in docs/api.md." });

export const pullDoneSchema = z.object({
  type: z.literal("done"),
  id: z.string().nullable(),
  repo: z.string(),
  commit: z.string(),
  path: z.string(),
  fetched_bytes: bytes(),
  resumed_bytes: bytes(),
  seconds: z.number(),
  model: managedModelSchema.nullable(),
});

export const loadResultSchema = z.object({ id: z.string(), state: z.literal("loaded"), load_ms: int().nonnegative(), memory_bytes: bytes() });
export const unloadResultSchema = z.object({ id: z.string(), state: z.literal("unloaded"), was_loaded: z.boolean() });
export const deleteResultSchema = z.object({ id: z.string(), deleted: z.literal(true), freed_bytes: bytes() });

export const systemSchema = z.object({
  daemon: z.object({ version: z.string().nullable(), pid: int(), uptime_seconds: int().nonnegative() }),
  memory: z.object({ total_bytes: bytes(), free_bytes: bytes(), rss_bytes: bytes() }),
  report: z
    .record(z.string(), z.unknown())
    .meta({ description: "`tabagent doctor --json`'s report: node, platform, cpu, node-llama-cpp and GPU probes, llama-server, Python, engines." }),
});

export const psSchema = z.object({
  models: z.array(
    z.object({
      id: z.string(),
      engine: z.string().nullable(),
      state: z.string(),
      running: int().nonnegative(),
      queued: int().nonnegative(),
      memory_bytes: bytes(),
      runtime: z.record(z.string(), z.unknown()).optional(),
    }),
  ),
  inflight: z.object({ requests: int().nonnegative(), running: int().nonnegative(), queued: int().nonnegative() }),
  memory: z.object({ loaded_bytes: bytes(), budget_bytes: bytes().nullable() }),
});

export const statsSchema = z.object({
  uptime_seconds: int().nonnegative(),
  requests_total: z.number().nullable().meta({ description: "/v1 requests answered; null with metrics off." }),
  prompt_tokens_total: z.number().nullable(),
  completion_tokens_total: z.number().nullable(),
  inflight: int().nonnegative(),
});
