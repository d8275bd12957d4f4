import type { TransformersDetails } from "../../core/detectionDetails.js";
import type { DetectedTask, FileRole, FormatDetection, ModelFile } from "../../core/detectionSchema.js";
import type { ModelFileEntry, ModelFileSystem } from "../ModelFileSystem.js";
import { classifyTransformersTask } from "./classifyTransformersTask.js";
import { isJsonObject, readJsonFile, type JsonObject } from "./readJsonFile.js";
import { readSentenceTransformersInfo, type SentenceTransformersInfo } from "./readSentenceTransformersInfo.js";
import { resolveShardIndex } from "./resolveShardIndex.js";
import { readWeightsMagic, type WeightsMagic } from "./sniffWeightsMagic.js";
import { summarizeSafetensorsShards, type SafetensorsShardsSummary } from "./summarizeSafetensorsShards.js";

/*
 * Pickle weights. Loading a pickle (`torch.load`) can execute arbitrary code, and the transformers sidecar loads
 * safetensors only, so pickle weights are reported (`details.unsafePickle = true`, a warning saying to convert them)
 * and no engine is chosen for them: there is no opt-in.
 */

const MAX_CONFIG_BYTES = 4 << 20;
/** tokenizer_config.json carries added tokens and templates: a few MB for large vocabularies. */
const MAX_TOKENIZER_CONFIG_BYTES = 16 << 20;
/** weight_map lists every tensor: ~10 MB for the largest published MoE models. */
const MAX_INDEX_BYTES = 64 << 20;
const MAX_ARCHITECTURES = 16;
/** Context lengths past this are placeholders (`1e30`-style sentinels), not limits. */
const MAX_CONTEXT = 2 ** 31 - 1;

const PICKLE_EXT = /\.(bin|pt|pth|ckpt|pkl)$/i;
/** Trainer state saved beside a checkpoint: pickles too, but never loaded as the model. */
const TRAINER_STATE = /^(training_args\.bin|optimizer\.(pt|bin)|scheduler\.(pt|bin)|scaler\.pt|rng_state(_\d+)?\.pth)$/;
/** Weights of other formats: another detector (GGUF, ONNX, LiteRT) owns a folder that only has these. */
const FOREIGN_FORMAT = /\.(gguf|onnx|tflite|litertlm|task)$/i;
/** Weights for other frameworks (TensorFlow, Flax, rust-bert) that the transformers sidecar does not load here. */
const OTHER_FRAMEWORK = /\.(h5|msgpack|ot)$/i;
const SHARD_NAME = /-\d{5}-of-\d{5}\.safetensors$/;
const CONTEXT_KEYS = ["max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length", "seq_length", "n_ctx", "max_seq_length", "max_target_positions"];
const CONFIG_FILES = new Set([
  "config.json",
  "generation_config.json",
  "preprocessor_config.json",
  "processor_config.json",
  "video_preprocessor_config.json",
  "feature_extractor_config.json",
  "image_processor_config.json",
  "modules.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
  "adapter_config.json",
]);
const TOKENIZER_FILE =
  /^(tokenizer\.json|tokenizer\.model(\.v\d+)?|tekken\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|vocab\.txt|vocab\.json|merges\.txt|sentencepiece\.bpe\.model|spiece\.model|spm\.model|source\.spm|target\.spm|vocab-src\.json|vocab-tgt\.json|[^/]+\.tiktoken|chat_template\.jinja|chat_template\.json)$/;

interface WeightsChoice {
  format: "safetensors" | "pytorch";
  weights: string[];
  index: string | null;
  /** Weights the index names that are not in the folder. */
  missing: string[];
}

function str(v: unknown): string | null {
  return typeof v === "string" && v.length > 0 ? v.slice(0, 200) : null;
}

function positiveInt(v: unknown): number | null {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0 && v <= MAX_CONTEXT ? v : null;
}

function contextLengthOf(config: JsonObject): number | null {
  const scopes = [config, config.text_config, config.llm_config, config.language_config].filter(isJsonObject);
  for (const scope of scopes) {
    for (const key of CONTEXT_KEYS) {
      const v = positiveInt(scope[key]);
      if (v !== null) return v;
    }
  }
  return null;
}

function quantizationFromConfig(config: JsonObject, details: TransformersDetails): string | null {
  const qc = config.quantization_config;
  if (!isJsonObject(qc)) return null;
  const method = str(qc.quant_method)?.toLowerCase() ?? null;
  if (!method) return null;
  const bits =
    typeof qc.bits === "number" && Number.isInteger(qc.bits) && qc.bits > 0 && qc.bits <= 64
      ? qc.bits
      : qc.load_in_4bit === true
        ? 4
        : qc.load_in_8bit === true
          ? 8
          : null;
  details.quantMethod = method;
  if (bits !== null) details.quantBits = bits;
  return bits !== null ? `${method}-${bits}bit` : method;
}

const TORCH_DTYPES: Record<string, string> = { bfloat16: "BF16", float16: "F16", half: "F16", float32: "F32", float: "F32" };

function chatTemplateSource(sizeOf: Map<string, number>, tokenizerConfig: JsonObject | null): string | null {
  if ((sizeOf.get("chat_template.jinja") ?? 0) > 0) return "chat_template.jinja";
  if ((sizeOf.get("chat_template.json") ?? 0) > 0) return "chat_template.json";
  const t = tokenizerConfig?.chat_template;
  // A single template string, or a list of named templates ({name, template}).
  const ok = (typeof t === "string" && t.trim().length > 0) || (Array.isArray(t) && t.some((x) => isJsonObject(x) && str(x.template)));
  return ok ? "tokenizer_config.json chat_template" : null;
}

function hasTokenizer(present: ReadonlySet<string>, root: string[], task: DetectedTask): boolean {
  const has = (p: string): boolean => present.has(p);
  if (["tokenizer.json", "tekken.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "spm.model", "source.spm", "vocab-src.json"].some(has)) {
    return true;
  }
  if (has("vocab.json") && (has("merges.txt") || task === "speech-recognition")) return true;
  return root.some((p) => /^tokenizer\.model(\.v\d+)?$/.test(p) || p.endsWith(".tiktoken"));
}

/** Which `.safetensors` files make up the model: the index's shards, else `model.safetensors`, else every one. */
async function chooseSafetensors(
  fs: ModelFileSystem,
  root: string[],
  present: ReadonlySet<string>,
  warnings: string[],
  details: TransformersDetails,
  signal?: AbortSignal,
): Promise<WeightsChoice | null> {
  const indexes = root.filter((p) => p.endsWith(".safetensors.index.json"));
  const index = indexes.includes("model.safetensors.index.json") ? "model.safetensors.index.json" : (indexes[0] ?? null);
  const fromIndex = index ? await followIndex(fs, index, present, warnings, details, signal) : null;
  if (fromIndex && fromIndex.weights.length > 0) return { format: "safetensors", ...fromIndex, index };

  const all = root.filter((p) => p.endsWith(".safetensors"));
  const weights = all.includes("model.safetensors") ? ["model.safetensors"] : all;
  if (weights.length === 0) return null;
  if (weights.length > 1 && weights.some((p) => SHARD_NAME.test(p))) warnings.push("sharded safetensors weights without an index file");
  return { format: "safetensors", weights, index, missing: fromIndex?.missing ?? [] };
}

async function followIndex(
  fs: ModelFileSystem,
  index: string,
  present: ReadonlySet<string>,
  warnings: string[],
  details: TransformersDetails,
  signal?: AbortSignal,
): Promise<{ weights: string[]; missing: string[] } | null> {
  const json = await readJsonFile(fs, index, MAX_INDEX_BYTES, warnings, signal);
  if (!json) return null;
  const r = resolveShardIndex(json, index, present);
  if (r.error) warnings.push(r.error);
  for (const name of r.unsafe) warnings.push(`${index} names shard ${JSON.stringify(name)} outside the model folder; ignored`);
  if (r.missing.length > 0) {
    const shown = r.missing.slice(0, 5).join(", ") + (r.missing.length > 5 ? `, ... (${r.missing.length} in all)` : "");
    warnings.push(`${index} names ${r.missing.length} missing shard${r.missing.length > 1 ? "s" : ""}: ${shown}`);
    details.missingShards = r.missing;
  }
  if (r.unsafe.length > 0) details.unsafeShardNames = r.unsafe;
  if (r.totalSize !== null) details.indexTotalSize = r.totalSize;
  return { weights: r.shards, missing: r.missing };
}

/** Pickle checkpoints, recognised by their first bytes (a `.bin` can just as well be GGUF or anything else). */
async function choosePickle(
  fs: ModelFileSystem,
  root: string[],
  present: ReadonlySet<string>,
  singleFile: boolean,
  warnings: string[],
  details: TransformersDetails,
  signal?: AbortSignal,
): Promise<{ choice: WeightsChoice | null; foreign: string[] }> {
  const indexes = root.filter((p) => /\.(bin|pt|pth)\.index\.json$/.test(p));
  const index = indexes.includes("pytorch_model.bin.index.json") ? "pytorch_model.bin.index.json" : (indexes[0] ?? null);
  const fromIndex = index ? await followIndex(fs, index, present, warnings, details, signal) : null;
  let candidates = fromIndex && fromIndex.weights.length > 0 ? fromIndex.weights : root.filter((p) => PICKLE_EXT.test(p) && !TRAINER_STATE.test(p));
  // A single file is judged by its bytes whatever its name.
  // (LiteRT bundles are zips too: theirs is the LiteRT detector's call.)
  if (singleFile && candidates.length === 0) candidates = root.filter((p) => !p.endsWith(".json") && !/\.(task|litertlm|tflite)$/i.test(p));

  const weights: string[] = [];
  const foreign: string[] = [];
  const kinds: Record<string, Extract<WeightsMagic, "torch-zip" | "pickle">> = {};
  for (const path of candidates) {
    const magic = await readWeightsMagic(fs, path, signal);
    if (magic === "torch-zip" || magic === "pickle") {
      weights.push(path);
      kinds[path] = magic;
    } else if (magic === "gguf") {
      foreign.push(path);
    } else if (/^pytorch_model|\.(pt|pth|ckpt)$/i.test(path) || fromIndex?.weights.includes(path)) {
      warnings.push(`${path} has neither a zip nor a pickle signature; ignored`);
    }
  }
  if (weights.length === 0) return { choice: null, foreign };
  details.pickleFormats = kinds;
  return { choice: { format: "pytorch", weights, index: fromIndex && fromIndex.weights.length > 0 ? index : null, missing: fromIndex?.missing ?? [] }, foreign };
}

function roleOf(path: string): FileRole {
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (name.endsWith(".index.json")) return "index";
  if (name.endsWith(".safetensors") || PICKLE_EXT.test(name)) return "weights";
  if (TOKENIZER_FILE.test(name)) return "tokenizer";
  if (CONFIG_FILES.has(name) || (path.includes("/") && name === "config.json")) return "config";
  return "other";
}

/** Every file the model is made of: the chosen weights and index, side files, and sentence-transformers modules. */
function modelFiles(files: ModelFileEntry[], choice: WeightsChoice | null, st: SentenceTransformersInfo | null): ModelFile[] {
  const chosen = new Set(choice?.weights ?? []);
  const out: ModelFile[] = [];
  for (const f of files) {
    const slash = f.path.indexOf("/");
    const inModule = st !== null && slash > 0 && st.moduleDirs.some((d) => f.path.startsWith(`${d}/`));
    if (chosen.has(f.path) || f.path === choice?.index) {
      out.push({ path: f.path, size: f.size, role: chosen.has(f.path) ? "weights" : "index" });
    } else if (inModule) {
      out.push({ path: f.path, size: f.size, role: roleOf(f.path) });
    } else if (slash < 0) {
      // Unused weights, other indexes, other formats and trainer state are not part of this model.
      const unused =
        f.path.endsWith(".safetensors") ||
        f.path.endsWith(".index.json") ||
        PICKLE_EXT.test(f.path) ||
        FOREIGN_FORMAT.test(f.path) ||
        OTHER_FRAMEWORK.test(f.path) ||
        TRAINER_STATE.test(f.path) ||
        f.path === "trainer_state.json";
      if (!unused) out.push({ path: f.path, size: f.size, role: roleOf(f.path) });
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function describeWeights(choice: WeightsChoice | null): string {
  if (!choice) return "no weights";
  const kind = choice.format === "pytorch" ? " (pickle)" : "";
  if (choice.index) return `${choice.weights.length} shard${choice.weights.length > 1 ? "s" : ""} from ${choice.index}${kind}`;
  return choice.weights.length === 1 ? `${choice.weights[0]}${kind}` : `${choice.weights.length} files${kind}`;
}

/**
 * Hugging Face style snapshots: config.json plus safetensors (single or sharded) or pickle weights, tokenizer files,
 * sentence-transformers modules. Reads only small JSON files and bounded safetensors headers, never tensor data.
 * Returns null when the folder has nothing of this kind (no config.json and no safetensors/pickle weights), or
 * only weights of another format (a GGUF `.bin`, ONNX, LiteRT) that another detector owns.
 */
export async function detectTransformersModel(fs: ModelFileSystem, files: ModelFileEntry[], signal?: AbortSignal): Promise<FormatDetection | null> {
  signal?.throwIfAborted();
  const present = new Set(files.map((f) => f.path));
  const sizeOf = new Map(files.map((f) => [f.path, f.size]));
  const root = files.filter((f) => !f.path.includes("/")).map((f) => f.path);
  const singleFile = files.length === 1;
  const warnings: string[] = [];
  const details: TransformersDetails = {};

  // A lone file with an unexpected name is judged by its bytes.
  let choice: WeightsChoice | null = null;
  const lone = singleFile ? files[0]! : null;
  if (lone && !/\.(safetensors|json)$/.test(lone.path) && !PICKLE_EXT.test(lone.path)) {
    const magic = await readWeightsMagic(fs, lone.path, signal);
    if (magic === "safetensors") choice = { format: "safetensors", weights: [lone.path], index: null, missing: [] };
    else if (magic !== "torch-zip" && magic !== "pickle") return null;
  }
  choice ??= await chooseSafetensors(fs, root, present, warnings, details, signal);
  let foreign: string[] = [];
  if (!choice) ({ choice, foreign } = await choosePickle(fs, root, present, singleFile, warnings, details, signal));

  const hasConfig = present.has("config.json");
  if (!choice) {
    if (!hasConfig) return null;
    if (foreign.length > 0 || files.some((f) => FOREIGN_FORMAT.test(f.path))) return null;
  }

  const config = hasConfig ? await readJsonFile(fs, "config.json", MAX_CONFIG_BYTES, warnings, signal) : null;
  if (!hasConfig) warnings.push("no config.json: the architecture and task are unknown");
  const tokenizerConfig = present.has("tokenizer_config.json") ? await readJsonFile(fs, "tokenizer_config.json", MAX_TOKENIZER_CONFIG_BYTES, warnings, signal) : null;
  const st = await readSentenceTransformersInfo(fs, present, warnings, signal);

  const architectures = Array.isArray(config?.architectures) ? config.architectures.slice(0, MAX_ARCHITECTURES).flatMap((a) => str(a) ?? []) : [];
  const modelType = str(config?.model_type);
  const chat = chatTemplateSource(sizeOf, tokenizerConfig);
  const { task, reason: taskReason } = config
    ? classifyTransformersTask({ architectures, modelType, chatTemplateSource: chat, sentenceTransformersMarker: st?.marker ?? null, numLabels: labelCount(config) })
    : st
      ? { task: "embeddings" as const, reason: `sentence-transformers model (${st.marker})` }
      : { task: "unknown" as const, reason: hasConfig ? "config.json is unreadable" : "no config.json" };

  if (modelType) details.modelType = modelType;
  if (architectures.length > 0) details.architectures = architectures;
  const torchDtype = str(config?.torch_dtype) ?? str(config?.dtype);
  if (torchDtype) details.torchDtype = torchDtype;

  // Custom modelling or tokenizer code only runs with trust_remote_code.
  const autoMap = [config?.auto_map, tokenizerConfig?.auto_map].filter(isJsonObject).flatMap((m) => Object.keys(m));
  if (autoMap.length > 0) {
    details.needsCustomCode = true;
    details.autoMap = [...new Set(autoMap)].slice(0, 32);
    warnings.push(`needs custom code (trust_remote_code): auto_map names ${[...new Set(autoMap)].slice(0, 4).join(", ")}`);
  }

  if (st) {
    details.sentenceTransformers = true;
    if (st.modules.length > 0) details.sentenceTransformersModules = st.modules;
    if (st.pooling) details.pooling = st.pooling;
    if (st.normalize) details.normalize = true;
    if (st.maxSeqLength !== null) details.maxSeqLength = st.maxSeqLength;
  }

  if (present.has("adapter_config.json")) {
    details.adapter = true;
    warnings.push("a PEFT adapter (adapter_config.json): it needs its base model to run");
  }
  if (task !== "image-classification" && !hasTokenizer(present, root, task)) {
    warnings.push("no tokenizer files (tokenizer.json, tokenizer.model, vocab.txt, vocab.json + merges.txt, ...)");
  }

  let parameterCount: number | null = null;
  let quantization = config ? quantizationFromConfig(config, details) : null;
  if (choice?.format === "safetensors") {
    const summary: SafetensorsShardsSummary = await summarizeSafetensorsShards(fs, choice.weights, signal);
    details.shards = choice.weights.length;
    details.tensorCount = summary.tensorCount;
    details.dtypes = summary.dtypes;
    for (const bad of summary.invalid) {
      const actually = bad.actualFormat ? ` (its bytes say ${bad.actualFormat})` : "";
      warnings.push(`${bad.path} is not a valid safetensors file${actually}: ${bad.message}`);
    }
    if (summary.invalid.length > 0) details.invalidWeights = summary.invalid;
    parameterCount = choice.missing.length === 0 ? summary.parameterCount : null;
    quantization ??= summary.dominantDtype;
  } else if (choice?.format === "pytorch") {
    details.shards = choice.weights.length;
    details.unsafePickle = true;
    warnings.push(
      `${describeWeights(choice)}: pickle weights can execute arbitrary code when loaded, so tabagent does not serve them; ` +
        "convert them to safetensors (transformers: save_pretrained(..., safe_serialization=True)) and serve that folder",
    );
    // The checkpoint's dtype is not readable without unpickling; config.json's torch_dtype is what it was saved in.
    quantization ??= torchDtype ? (TORCH_DTYPES[torchDtype] ?? null) : null;
  } else {
    const others = root.filter((p) => OTHER_FRAMEWORK.test(p));
    warnings.push(
      others.length > 0
        ? `only ${others.join(", ")} (TensorFlow/Flax/rust weights), no safetensors or PyTorch weights`
        : "no weights found (model.safetensors, shards with an index, or pytorch_model.bin)",
    );
  }
  if (st) {
    for (const dir of st.moduleDirs) {
      const pickles = files.filter((f) => f.path.startsWith(`${dir}/`) && PICKLE_EXT.test(f.path));
      const safe = files.some((f) => f.path.startsWith(`${dir}/`) && f.path.endsWith(".safetensors"));
      if (pickles.length > 0 && !safe) warnings.push(`${pickles[0]!.path}: sentence-transformers module weights are a pickle`);
    }
  }

  return {
    format: choice?.format ?? "unknown",
    task,
    reason: `${taskReason}; weights: ${describeWeights(choice)}`,
    architecture: architectures[0] ?? modelType,
    parameterCount,
    quantization,
    contextLength: config ? contextLengthOf(config) : null,
    hasChatTemplate: chat !== null,
    files: modelFiles(files, choice, st),
    warnings,
    details,
  };
}

/** `num_labels`, else the size of `id2label`; null when config.json names neither (transformers then assumes 2). */
function labelCount(config: Record<string, unknown>): number | null {
  if (typeof config.num_labels === "number") return config.num_labels;
  return isJsonObject(config.id2label) ? Object.keys(config.id2label).length : null;
}
