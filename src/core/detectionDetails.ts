import { z } from "zod";

/*
 * `Detection.details` per format: what each detector writes, for display (`tabagent detect`) and for the parts that
 * route and load models. Every object is strict, so a cached detection written with other keys or other value types
 * does not parse (and is detected again). Keys are listed in the order the detectors write them: parsing a cached
 * detection gives back the same JSON, key order included. A key is optional where some detection leaves it out (an
 * invalid file, a model still downloading, a branch the detector did not take).
 */

/** Facts any format may carry: added by `tabagent detect --probe` after static detection. */
const probeShape = {
  /** Why llama.cpp refused the GGUF when opened in a child process (then nothing serves it in process). */
  loadProbe: z.string().optional(),
  /** Why the chat template cannot be rendered (it hangs, exhausts memory, ...): chat is refused. */
  chatTemplateProblem: z.string().optional(),
};

/** Weights a detector found broken, one line each (`path: why`): nothing serves such a model. */
const invalidWeightLines = z.array(z.string());

const count = z.number().int().nonnegative();

// --- GGUF (gguf, bitnet-gguf) -------------------------------------------------------------------------------------

export const ggufDetailsSchema = z.strictObject({
  /** `general.name`. */
  name: z.string().nullable().optional(),
  ggufVersion: z.number().optional(),
  /** `general.file_type` (a llama_ftype number). */
  fileType: z.number().nullable().optional(),
  /** `<arch>.pooling_type` (embedding models). */
  poolingType: z.number().nullable().optional(),
  tensorCount: count.optional(),
  /** Tensor type name (`Q4_K`, `F32`, `I2_S`) to how many tensors use it. */
  tensorTypes: z.record(z.string(), count).optional(),
  /** Why the file is BitNet or plain GGUF (`tensor types I2_S`, ...). */
  flavorReason: z.string().optional(),
  hasVisionProjector: z.boolean().optional(),
  /** The file is not a GGUF llama.cpp can load (a folder lists it instead of failing its siblings). */
  invalidWeights: invalidWeightLines.optional(),
  ...probeShape,
});
export type GgufDetails = z.infer<typeof ggufDetailsSchema>;

// --- ONNX ---------------------------------------------------------------------------------------------------------

const onnxLayoutSchema = z.enum(["onnxruntime-genai", "transformers.js", "optimum", "single-file", "folder"]);

const onnxValueSchema = z.strictObject({
  name: z.string(),
  /** Element type name (`float32`, `int64`, ...). */
  type: z.string().nullable(),
  /** A number, a symbolic name (`batch_size`) or null per dimension; null when no shape is given. */
  shape: z.array(z.union([z.number(), z.string(), z.null()])).nullable(),
  kind: z.enum(["tensor", "sparse-tensor", "sequence", "map", "optional", "unknown"]),
});

const onnxVariantSchema = z.strictObject({
  path: z.string(),
  component: z.string(),
  quantization: z.string().nullable(),
  size: count,
});

const onnxExternalDataSchema = z.strictObject({
  /** As written in the graph. */
  location: z.string(),
  tensors: count,
  bytes: count.nullable(),
  /** Relative to the model root; null when the location leads outside the model folder. */
  path: z.string().nullable(),
  exists: z.boolean(),
  safe: z.boolean(),
});

const onnxGenaiConfigSchema = z.strictObject({
  path: z.string().nullable(),
  modelType: z.string().nullable(),
  contextLength: z.number().int().positive().nullable(),
  decoder: z.string().nullable(),
  otherConfigs: z.array(z.string()),
});

export const onnxDetailsSchema = z.strictObject({
  layout: onnxLayoutSchema.optional(),
  /** The graph an engine opens, relative to the model root. */
  primaryFile: z.string().optional(),
  components: z.array(z.string()).optional(),
  /** The other graphs (other precisions and components); a pull fetches only the primary one. */
  variants: z.array(onnxVariantSchema).optional(),
  inputs: z.array(onnxValueSchema).nullable().optional(),
  outputs: z.array(onnxValueSchema).nullable().optional(),
  /** The default domain's opset. */
  opset: z.number().int().nullable().optional(),
  opsets: z
    .array(z.strictObject({ domain: z.string(), version: z.number().int() }))
    .nullable()
    .optional(),
  producer: z.string().nullable().optional(),
  graphError: z.string().nullable().optional(),
  irVersion: z.number().int().nullable().optional(),
  nodeCount: count.nullable().optional(),
  initializerCount: count.nullable().optional(),
  /** Element type name to initializer count. */
  initializerTypes: z.record(z.string(), count).nullable().optional(),
  inlineDataBytes: count.nullable().optional(),
  externalData: z.array(onnxExternalDataSchema).optional(),
  unsafeExternalData: z.boolean().optional(),
  genai: z.boolean().optional(),
  genaiConfig: onnxGenaiConfigSchema.nullable().optional(),
  bytesRead: count.nullable().optional(),
  invalidWeights: invalidWeightLines.optional(),
  ...probeShape,
});
export type OnnxDetails = z.infer<typeof onnxDetailsSchema>;

// --- Transformers (safetensors, pytorch) ---------------------------------------------------------------------------

const invalidShardSchema = z.strictObject({
  path: z.string(),
  message: z.string(),
  /** What the first bytes say the file is instead (a renamed GGUF or pickle). */
  actualFormat: z.enum(["gguf", "torch-zip", "pickle"]).nullable(),
});

const safetensorsDtypeStatsSchema = z.strictObject({ tensors: count, parameters: count, bytes: count });

const transformersShape = {
  /** Shards the index names that are not in the folder. */
  missingShards: z.array(z.string()).optional(),
  /** Shard names in the index that lead outside the model folder (ignored). */
  unsafeShardNames: z.array(z.string()).optional(),
  /** The index's `metadata.total_size`. */
  indexTotalSize: count.optional(),
  /** Each pickle weights file and its kind (a torch ZIP checkpoint or a bare pickle). */
  pickleFormats: z.record(z.string(), z.enum(["torch-zip", "pickle"])).optional(),
  modelType: z.string().optional(),
  architectures: z.array(z.string()).optional(),
  torchDtype: z.string().optional(),
  /** config.json or tokenizer_config.json has an `auto_map`: loading runs the repo's code (trust_remote_code). */
  needsCustomCode: z.literal(true).optional(),
  /** The auto_map's class keys (`AutoConfig`, `AutoModelForCausalLM`, ...). */
  autoMap: z.array(z.string()).optional(),
  sentenceTransformers: z.literal(true).optional(),
  /** Module class names in pipeline order (`Transformer`, `Pooling`, `Normalize`). */
  sentenceTransformersModules: z.array(z.string()).optional(),
  pooling: z.string().optional(),
  normalize: z.literal(true).optional(),
  maxSeqLength: z.number().int().positive().optional(),
  /** A PEFT adapter (adapter_config.json). */
  adapter: z.literal(true).optional(),
  quantMethod: z.string().optional(),
  quantBits: z.number().int().positive().optional(),
  shards: count.optional(),
  tensorCount: count.optional(),
  /** Safetensors dtype (`BF16`, `F32`, ...) to its tensors, parameters and bytes. */
  dtypes: z.record(z.string(), safetensorsDtypeStatsSchema).optional(),
  /** Safetensors files whose header is broken. */
  invalidWeights: z.array(invalidShardSchema).optional(),
  /** Pickle weights: loading them can run code. */
  unsafePickle: z.literal(true).optional(),
  ...probeShape,
};

export const transformersDetailsSchema = z.strictObject(transformersShape);
export type TransformersDetails = z.infer<typeof transformersDetailsSchema>;

// --- LiteRT ---------------------------------------------------------------------------------------------------------

const liteRtContainerSchema = z.enum(["litertlm", "task", "tflite"]);

const litertlmValue = z.union([z.string(), z.number(), z.boolean()]);

const litertlmDetailsSchema = z.strictObject({
  version: z.string(),
  systemMetadata: z.record(z.string(), litertlmValue),
  sections: z.array(z.strictObject({ dataType: z.string(), begin: z.number().nonnegative(), end: z.number().nonnegative(), items: z.record(z.string(), litertlmValue) })),
  modelTypes: z.array(z.string()),
});

const liteRtBundleSchema = z.strictObject({
  entries: z.array(z.strictObject({ name: z.string(), size: count, compressed: z.boolean(), tflite: z.boolean().nullable() })).optional(),
  /** The TFLite models inside, by entry name. */
  models: z.array(z.string()).optional(),
  tokenizer: z.string().nullable().optional(),
  /** It holds an LLM prefill/decode model. */
  llm: z.boolean().optional(),
});

const tfliteSummarySchema = z.strictObject({
  version: z.number().int().nullable(),
  description: z.string().nullable(),
  subgraphCount: count,
  subgraphNames: z.array(z.string()),
  metadata: z.array(z.string()),
  signatures: z.array(z.strictObject({ key: z.string(), inputs: z.array(z.string()), outputs: z.array(z.string()) })),
  operatorCodeCount: count,
  bufferCount: count,
  tensorCount: count,
  bytesRead: count,
});

export const liteRtDetailsSchema = z.strictObject({
  primaryFile: z.string().optional(),
  container: liteRtContainerSchema.optional(),
  /** Every LiteRT model found, the primary one first. */
  models: z.array(z.strictObject({ path: z.string(), container: liteRtContainerSchema, size: count })).optional(),
  /** A `.litertlm` container's header; null when it was not read. */
  litertlm: litertlmDetailsSchema.nullable().optional(),
  /** A MediaPipe `.task` bundle's entries. */
  bundle: liteRtBundleSchema.optional(),
  /** A `.tflite` FlatBuffer's summary; null when it was not read. */
  tflite: tfliteSummarySchema.nullable().optional(),
  /** Files with LiteRT magic that the runtime would refuse, and why. */
  invalidWeights: invalidWeightLines.optional(),
  ...probeShape,
});
export type LiteRtDetails = z.infer<typeof liteRtDetailsSchema>;

// --- unknown, upstream ----------------------------------------------------------------------------------------------

/**
 * Format `unknown`: nothing found (`{}`), a transformers folder without weights (its config facts), or a model an
 * upstream server serves (`{ upstream }`).
 */
export const unknownDetailsSchema = z.strictObject({ ...transformersShape, upstream: z.string().optional() });
