import { availableParallelism } from "node:os";
import { z } from "zod";
import { engineNameSchema } from "../core/detectionSchema.js";
import { parseHubSource } from "../detection/hub/parseHubSource.js";
import { ONNX_PROVIDERS } from "./onnxProviders.js";
import { securityConfigShape } from "./securityConfigShape.js";

export const DEFAULT_PORT = 8471;

/** Model ids appear in URLs and logs: keep them to a safe, path-free alphabet. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** What `path` holds for an entry given as `source` (it names no file until the pull is done). */
export const HUB_SOURCE_PATH_PREFIX = "hf://";

export const modelEntrySchema = z
  .strictObject({
    id: z.string().regex(MODEL_ID_PATTERN, "model ids use letters, digits and . _ : @ - (max 128)").optional(),
    path: z.string().min(1).optional(),
    /** Instead of `path`: a Hugging Face model pulled into the store on start (`owner/name[@revision][:file-or-quant]`). */
    source: z
      .string()
      .refine((s) => parseHubSource(s) !== null, "source must be owner/name[@revision][:file-or-quant]")
      .optional(),
    /** Per-model overrides of the daemon-wide settings of the same name. */
    contextSize: z
      .number()
      .int()
      .min(64)
      .max(1 << 20)
      .optional(),
    threads: z.number().int().min(1).max(1024).optional(),
    parallel: z.number().int().min(1).max(64).optional(),
    gpuLayers: z.union([z.literal("auto"), z.literal("max"), z.number().int().min(0).max(100_000)]).optional(),
    /** Idle seconds before this model is unloaded; 0 = never. */
    ttlSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .optional(),
    /** A Jinja chat template used instead of the model's own (every engine that renders chat prompts). */
    // Passed on a command line to llama-server and the Python sidecar, where one argument is capped at 128 KiB.
    chatTemplate: z
      .string()
      .min(1)
      .max(64 * 1024, "chat templates longer than 64 KiB are not supported")
      .optional(),
    /** Load this model when the daemon starts. */
    preload: z.boolean().optional(),
    /** Serve with this engine instead of the one detection chooses. */
    engine: engineNameSchema.optional(),
    /** llama-server engines: this binary, before the lookup order (see docs/native.md). */
    llamaServerPath: z.string().min(1).optional(),
    /** llama-server engines: extra command-line arguments. */
    args: z.array(z.string()).max(256).optional(),
    /** transformers engine: "auto" picks CUDA, then Apple MPS, then CPU. */
    device: z
      .enum(["auto", "cpu", "cuda", "mps"])
      .or(z.string().regex(/^cuda:\d{1,2}$/, "device is auto, cpu, cuda, cuda:N or mps"))
      .optional(),
    /** transformers engine: "auto" is bf16 (or fp16) on a GPU, fp32 on the CPU. */
    dtype: z.enum(["auto", "float32", "float16", "bfloat16"]).optional(),
    /** transformers engine: run the Python code shipped with this model (off unless set here). */
    trustRemoteCode: z.boolean().optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.path === undefined) === (e.source === undefined)) ctx.addIssue({ code: "custom", path: ["path"], message: "give either path or source" });
    if (e.source !== undefined && e.id === undefined) ctx.addIssue({ code: "custom", path: ["id"], message: "a model given by source needs an id" });
  })
  .transform((e) => ({ ...e, path: e.path ?? `${HUB_SOURCE_PATH_PREFIX}${e.source}` }));
export type ModelEntry = z.infer<typeof modelEntrySchema>;

/**
 * llama.cpp threads: one per physical core is its sweet spot. `availableParallelism()` counts logical CPUs,
 * so halve it (SMT) and keep at least one. On a 2-core box this gives 1, which is also the fastest for small
 * models there (more threads than free cores make every decode step wait on the slowest thread).
 */
export function defaultThreads(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

const int = (min: number, max: number) => z.number().int().min(min).max(max);

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Bytes as a number or text with a unit (`512MiB`, `16 GB`); text that is neither is passed on for zod to report. */
function parseByteSize(v: unknown): unknown {
  if (typeof v !== "string") return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(v);
  if (!m) return v;
  return Math.round(Number(m[1]) * (BYTE_UNITS[(m[2] ?? "b").toLowerCase()] ?? 1));
}
const byteSize = z.preprocess(parseByteSize, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER));

/** The `ggufEngine` setting (see GgufEngineSetting). */
export const ggufEngineSchema = z.enum(["auto", "node-llama-cpp", "llama-server"]);

/** Places besides the configured ones where models are found at start. */
const discoverySourceSchema = z.enum(["store", "lmstudio", "ollama"]);

/**
 * What `tabagent serve`/`models`/`ls` discover unless told otherwise. Programs embedding the daemon (and tests)
 * get none by default, so what they serve never depends on the machine's home folder.
 */
export const DEFAULT_DISCOVERY: readonly z.infer<typeof discoverySourceSchema>[] = ["store", "lmstudio", "ollama"];

/** Well-known local OpenAI-compatible servers, by name. */
export const UPSTREAM_PRESETS: Record<string, string> = {
  lmstudio: "http://127.0.0.1:1234/v1",
  ollama: "http://127.0.0.1:11434/v1",
  vllm: "http://127.0.0.1:8000/v1",
};

export const upstreamSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, "upstream names use letters, digits, _ and - (max 32)"),
  /** Up to and including `/v1`. Defaults to the preset of the same name (lmstudio, ollama, vllm). */
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  apiKey: z.string().min(1).optional(),
  /** Models to expose; default: whatever the upstream's /v1/models lists. */
  models: z.array(z.string().min(1).max(256)).optional(),
  /** Exposed ids are `prefix + upstream id`, and any requested id with the prefix routes here. */
  prefix: z.string().max(64).default(""),
  connectTimeoutMs: int(100, 600_000).default(5_000),
  firstByteTimeoutMs: int(100, 3_600_000).default(300_000),
  /** Requests sent to one upstream model at once; the rest queue here. */
  parallel: int(1, 1024).default(16),
});
export type UpstreamConfig = z.infer<typeof upstreamSchema>;

export const configSchema = z.strictObject({
  ...securityConfigShape,
  host: z.string().min(1).default("127.0.0.1"),
  port: int(0, 65535).default(DEFAULT_PORT),
  models: z.array(modelEntrySchema).default([]),
  modelsDirs: z.array(z.string().min(1)).default([]),
  threads: int(1, 1024).default(defaultThreads),
  /** Tokens per sequence; capped by the model's trained context length. */
  contextSize: int(64, 1 << 20).default(4096),
  /** Concurrent requests per model (llama.cpp context sequences). */
  parallel: int(1, 64).default(4),
  /** Requests that may wait per model once all slots are busy; beyond it: 429. */
  queueSize: int(0, 100_000).default(64),
  /** Unload a model after this many idle seconds; 0 = never. */
  idleTtlSeconds: int(0, 7 * 24 * 3600).default(300),
  bodyLimitBytes: int(1024, 1 << 30).default(8 * 1024 * 1024),
  /** Largest max_tokens a request may ask for. */
  maxTokensCap: int(1, 1 << 20).default(32_768),
  /** Most messages in one chat request. */
  maxMessages: int(1, 100_000).default(1_024),
  /** Requests in the daemon at once, running or queued, across all models; beyond it: 429. */
  maxInflight: int(1, 1_000_000).default(1_024),
  /** A request's headers and body must arrive within this time (slow-loris defence). */
  requestTimeoutSeconds: int(1, 3600).default(60),
  /** A connection with no traffic either way for this long is closed (streams write often enough to stay open). */
  idleTimeoutSeconds: int(1, 24 * 3600).default(600),
  shutdownGraceSeconds: int(0, 3600).default(30),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Prometheus metrics: per-request and per-token series and `GET /metrics`. Off: none of it is recorded, /metrics is 404. */
  metrics: z.boolean().default(true),
  /** Every chat/completion answer carries llama-server's `timings` object, as if each request asked for it. */
  timings: z.boolean().default(false),
  /** The management API's POST and DELETE routes (pull, load, unload, delete) are refused with 403 `read_only`. */
  readOnly: z.boolean().default(false),
  /** "auto" lets node-llama-cpp use CUDA/Vulkan/Metal when a prebuilt binary for it works. */
  gpu: z.enum(["auto", "off"]).default("auto"),
  gpuLayers: z.union([z.literal("auto"), z.literal("max"), int(0, 100_000)]).default("auto"),
  /**
   * ONNX Runtime execution providers in order of preference (a model's `device` overrides it); CPU is always the
   * fallback. CUDA and TensorRT need onnxruntime-node's provider libraries (docs/backends.md).
   */
  onnxProviders: z.array(z.enum(ONNX_PROVIDERS)).min(1).max(ONNX_PROVIDERS.length).default(["cpu"]),
  /**
   * Which engine serves GGUF models whose entry names none. `auto`: generation on a supervised llama-server when
   * a built or configured binary is found (faster), else in process on node-llama-cpp; embeddings stay in process.
   */
  ggufEngine: ggufEngineSchema.default("auto"),
  /** The Python interpreter for the transformers sidecar; default: the venv `tabagent setup python` made. */
  python: z.string().min(1).optional(),
  /** Create the Python venv on the first use of a transformers model when none exists (minutes; logged). */
  pythonAutoSetup: z.boolean().default(true),
  /** `tabagent native-host` starts `tabagent serve` (with this config) when a browser extension calls and no daemon answers. */
  nativeHostAutoStart: z.boolean().default(false),
  /** Where venvs and other daemon data live; default $TABAGENT_DATA_DIR or $XDG_DATA_HOME/tabagent. */
  dataDir: z.string().min(1).optional(),
  /** A generation that produces nothing for this long is treated as hung: its engine process is replaced. */
  stallTimeoutSeconds: int(1, 24 * 3600).default(300),
  /** Pulled models: the Hugging Face hub cache layout; default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub. */
  storeDir: z.string().min(1).optional(),
  /** The hub `pull` talks to (a mirror, or a local server); default https://huggingface.co. */
  hubUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** A file holding a Hugging Face access token for gated and private repos (HF_TOKEN wins). */
  hfTokenFile: z.string().min(1).optional(),
  /** Models found at start besides the configured ones; the CLI's default is DEFAULT_DISCOVERY, a program's none. */
  discover: z.preprocess((v) => (Array.isArray(v) && v.length === 1 && v[0] === "none" ? [] : v), z.array(discoverySourceSchema)).default([]),
  /** LM Studio's models folder; default ~/.lmstudio/models, then ~/.cache/lm-studio/models. */
  lmstudioDir: z.string().min(1).optional(),
  /** Ollama's model store; default $OLLAMA_MODELS, then ~/.ollama/models. */
  ollamaDir: z.string().min(1).optional(),
  /** Other names for models: `{ "chat": "acme--tiny-GGUF:Q4_K_M" }`. */
  aliases: z.record(z.string().regex(MODEL_ID_PATTERN, "aliases use letters, digits and . _ : @ - (max 128)"), z.string().min(1).max(256)).default({}),
  /** Model ids loaded when the daemon starts. */
  preload: z.array(z.string().min(1).max(256)).default([]),
  /** Most models loaded at once; loading one more unloads the least recently used idle one. 0 = no limit. */
  maxLoadedModels: int(0, 1024).default(0),
  /** Estimated memory (weights + KV cache) all loaded models may use, in bytes or with a unit (`16GiB`); 0 = no limit. */
  memoryBudget: byteSize.default(0),
  upstreams: z
    .array(upstreamSchema)
    .default([])
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((u, i) => {
        if (seen.has(u.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `two upstreams are named '${u.name}'` });
        seen.add(u.name);
        if (!u.baseUrl && !UPSTREAM_PRESETS[u.name]) {
          ctx.addIssue({ code: "custom", path: [i, "baseUrl"], message: `needs a baseUrl (presets: ${Object.keys(UPSTREAM_PRESETS).join(", ")})` });
        }
      });
    }),
});

export type Config = z.infer<typeof configSchema>;
