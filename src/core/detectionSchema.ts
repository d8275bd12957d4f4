import { z } from "zod";

/**
 * The one description of a model that every other part reads: the registry lists it, the router picks an engine
 * from it, `tabagent detect` and `/v1/models` show it. JSON-serialisable (no bigint, no Map).
 */
export const modelFormatSchema = z.enum(["gguf", "bitnet-gguf", "onnx", "safetensors", "pytorch", "litert", "unknown"]);
export type ModelFormatName = z.infer<typeof modelFormatSchema>;

export const detectedTaskSchema = z.enum([
  "chat",
  "text-generation",
  "embeddings",
  "text2text",
  "text-classification",
  "token-classification",
  "speech-recognition",
  "image-classification",
  "unknown",
]);
export type DetectedTask = z.infer<typeof detectedTaskSchema>;

export const engineNameSchema = z.enum([
  "node-llama-cpp",
  "llama-server",
  "llama-server-bitnet",
  "onnxruntime",
  "transformers",
  "litert",
  "upstream",
]);
export type EngineName = z.infer<typeof engineNameSchema>;

export const fileRoleSchema = z.enum(["weights", "config", "tokenizer", "projector", "external-data", "index", "other"]);
export type FileRole = z.infer<typeof fileRoleSchema>;

export const modelFileSchema = z.object({
  /** Relative to the model root (a folder or repo); the file name for a single-file model. */
  path: z.string(),
  size: z.number().int().nonnegative().nullable(),
  role: fileRoleSchema,
});
export type ModelFile = z.infer<typeof modelFileSchema>;

export const detectionSchema = z.object({
  /** What was asked for: a path or `owner/name[@rev][:file]`. */
  source: z.string(),
  format: modelFormatSchema,
  task: detectedTaskSchema,
  /** Why this format and task, in one line (`general.architecture = bert`, `config.json: LlamaForCausalLM`). */
  reason: z.string(),
  architecture: z.string().nullable(),
  parameterCount: z.number().int().nonnegative().nullable(),
  /** `Q4_K_M`, `F16`, `I2_S`, `BF16`, `int8`, ... */
  quantization: z.string().nullable(),
  contextLength: z.number().int().positive().nullable(),
  hasChatTemplate: z.boolean(),
  files: z.array(modelFileSchema),
  /** The engine that serves it and why; null when nothing may serve it (unknown format, unsafe pickle, ...). */
  engine: z.object({ name: engineNameSchema, reason: z.string() }).nullable(),
  /** Other engines that could serve it (config may choose one). */
  alternatives: z.array(engineNameSchema),
  warnings: z.array(z.string()),
  /** Format-specific facts (GGUF file type, tensor type histogram, ONNX inputs, ...), for display and routing. */
  details: z.record(z.string(), z.unknown()),
});
export type Detection = z.infer<typeof detectionSchema>;

/** Fields a format detector fills; `source`, `engine` and `alternatives` are added by detectModel. */
export type FormatDetection = Omit<Detection, "source" | "engine" | "alternatives">;
