import { z } from "zod";
import {
  ggufDetailsSchema,
  liteRtDetailsSchema,
  onnxDetailsSchema,
  transformersDetailsSchema,
  unknownDetailsSchema,
  type GgufDetails,
  type LiteRtDetails,
  type OnnxDetails,
  type TransformersDetails,
} from "./detectionDetails.js";

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
  "rerank",
  "text2text",
  "text-classification",
  "token-classification",
  "speech-recognition",
  "image-classification",
  "unknown",
]);
export type DetectedTask = z.infer<typeof detectedTaskSchema>;

export const engineNameSchema = z.enum(["node-llama-cpp", "llama-server", "llama-server-bitnet", "onnxruntime", "transformers", "litert", "upstream"]);
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

const engineChoiceSchema = z.object({ name: engineNameSchema, reason: z.string() });

/** One variant of the detection union: the same fields for every format, `details` typed by `format`. */
function detectionVariant<F extends z.ZodType<ModelFormatName>, D extends z.ZodType>(format: F, details: D) {
  return z.object({
    /** What was asked for: a path or `owner/name[@rev][:file]`. */
    source: z.string(),
    format,
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
    engine: engineChoiceSchema.nullable(),
    /** Other engines that could serve it (config may choose one). */
    alternatives: z.array(engineNameSchema),
    warnings: z.array(z.string()),
    /** Format-specific facts (GGUF file type, tensor type histogram, ONNX inputs, ...), for display and routing. */
    details,
  });
}

const variants = [
  detectionVariant(z.literal("gguf"), ggufDetailsSchema),
  detectionVariant(z.literal("bitnet-gguf"), ggufDetailsSchema),
  detectionVariant(z.literal("onnx"), onnxDetailsSchema),
  detectionVariant(z.enum(["safetensors", "pytorch"]), transformersDetailsSchema),
  detectionVariant(z.literal("litert"), liteRtDetailsSchema),
  detectionVariant(z.literal("unknown"), unknownDetailsSchema),
] as const;

/**
 * A detection, discriminated by `format`: `details` has the shape its format's detector writes. A detection whose
 * details do not match its format (a cache written by another version) does not parse.
 */
export const detectionSchema = z.discriminatedUnion("format", [...variants]);
export type Detection = z.infer<typeof detectionSchema>;

const NOT_FROM_DETECTOR = { source: true, engine: true, alternatives: true } as const;

/** What a format detector returns: a detection without `source`, `engine` and `alternatives`. */
export const formatDetectionSchema = z.discriminatedUnion("format", [
  variants[0].omit(NOT_FROM_DETECTOR),
  variants[1].omit(NOT_FROM_DETECTOR),
  variants[2].omit(NOT_FROM_DETECTOR),
  variants[3].omit(NOT_FROM_DETECTOR),
  variants[4].omit(NOT_FROM_DETECTOR),
  variants[5].omit(NOT_FROM_DETECTOR),
]);
/** Fields a format detector fills; `source`, `engine` and `alternatives` are added by detectModel. */
export type FormatDetection = z.infer<typeof formatDetectionSchema>;

/** Facts `tabagent detect --probe` adds to any format's details. */
export interface ProbeDetails {
  loadProbe?: string;
  chatTemplateProblem?: string;
}

/** The detection with `extra` added to its details (a copy; the detection given is not changed). */
export function withProbeDetails<D extends FormatDetection>(d: D, extra: ProbeDetails): D {
  return { ...d, details: { ...d.details, ...extra } };
}

// Typed reads of `details`: null when the detection is of another format.

/** GGUF header facts of a `gguf` or `bitnet-gguf` detection. */
export function ggufDetails(d: FormatDetection): GgufDetails | null {
  return d.format === "gguf" || d.format === "bitnet-gguf" ? d.details : null;
}

/** Why a BitNet GGUF was judged BitNet (`tensor types I2_S`, `architecture bitnet`); null for other formats. */
export function bitnetFlavorReason(d: FormatDetection): string | null {
  return d.format === "bitnet-gguf" ? (d.details.flavorReason ?? null) : null;
}

export function onnxDetails(d: FormatDetection): OnnxDetails | null {
  return d.format === "onnx" ? d.details : null;
}

/** Config and weights facts of a `safetensors` or `pytorch` detection. */
export function transformersDetails(d: FormatDetection): TransformersDetails | null {
  return d.format === "safetensors" || d.format === "pytorch" ? d.details : null;
}

export function liteRtDetails(d: FormatDetection): LiteRtDetails | null {
  return d.format === "litert" ? d.details : null;
}

/** The upstream server's name for a model an upstream serves; null otherwise. */
export function upstreamName(d: FormatDetection): string | null {
  return d.format === "unknown" ? (d.details.upstream ?? null) : null;
}

/** A detector found weights the engine would refuse (broken header, unloadable graph): nothing may serve it. */
export function hasInvalidWeights(d: FormatDetection): boolean {
  return d.details.invalidWeights !== undefined;
}
