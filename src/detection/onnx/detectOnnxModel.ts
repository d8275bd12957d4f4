import { posix } from "node:path";
import type { FileRole, FormatDetection, ModelFile } from "../../core/detectionSchema.js";
import type { ModelFileEntry, ModelFileSystem } from "../ModelFileSystem.js";
import { taskFromConfig, taskFromGenaiConfig, taskFromGraph, type ConfigContext, type TaskDecision } from "./inferOnnxTask.js";
import {
  choosePrimaryOnnx,
  isOnnxFile,
  ONNX_EXTERNAL_DATA,
  parseOnnxFileName,
  quantizationFromFolder,
  resolveExternalLocation,
  type OnnxFileName,
} from "./onnxFileNames.js";
import { jsonObject, jsonPositiveInt, jsonString, readJsonFile, type JsonObject } from "./readJsonFile.js";
import { InvalidOnnxError, readOnnxSummary, type OnnxSummary } from "./readOnnxSummary.js";
import { validateOnnxSummary } from "./validateOnnxSummary.js";

const MAX_CONFIG_BYTES = 4 << 20;
/** tokenizer_config.json carries added tokens too: some are megabytes. */
const MAX_TOKENIZER_CONFIG_BYTES = 16 << 20;
const MAX_LISTED_VALUES = 256;

const OPTIMUM_COMPONENTS = new Set(["model", "decoder_model", "decoder_model_merged", "decoder_with_past_model", "encoder_model"]);
/** Precisions whose packed weights make initializer element counts meaningless as parameter counts. */
const PACKED = new Set(["int4", "q4", "q4f16", "bnb4", "uint4"]);
const CONTEXT_KEYS = ["max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx", "max_seq_len"];
const SENTENCE_TRANSFORMERS_FILES = ["modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"];

const CONFIG_FILES = new Set([
  "config.json",
  "genai_config.json",
  "generation_config.json",
  "preprocessor_config.json",
  "processor_config.json",
  "quantize_config.json",
  "ort_config.json",
  "modules.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
  "inference_model.json",
]);
const TOKENIZER_FILES = new Set([
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "vocab.txt",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "spiece.model",
  "sentencepiece.bpe.model",
  "chat_template.jinja",
  "chat_template.json",
]);

function join(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

function depthOf(path: string): number {
  return path.split("/").length;
}

/** The precision the graph's operators or weights show, when the file name does not say. */
function quantizationFromGraph(s: OnnxSummary): string | null {
  const ops = Object.keys(s.opTypes).map((k) => k.slice(k.lastIndexOf(":") + 1));
  if (ops.includes("MatMulBnb4")) return "bnb4";
  if (ops.some((o) => o === "MatMulNBits" || o === "GatherBlockQuantized")) return "int4";
  if (ops.some((o) => /^QLinear|^(MatMul|Conv)Integer$|^DynamicQuantize/.test(o) || o === "QuantizeLinear")) return "int8";
  const t = s.initializerTypes;
  const ranked = Object.entries(t).sort((a, b) => b[1] - a[1]);
  const top = ranked[0]?.[0];
  if (top === "float16") return "fp16";
  if (top === "bfloat16") return "bf16";
  if (top === "float32") return "fp32";
  if (top === "int8" || top === "uint8") return "int8";
  return null;
}

function contextFromConfig(config: JsonObject | null): number | null {
  for (const c of [config, jsonObject(config?.["text_config"])]) {
    if (!c) continue;
    for (const key of CONTEXT_KEYS) {
      const v = jsonPositiveInt(c[key]);
      if (v !== null) return v;
    }
  }
  return null;
}

function hasTemplate(tokenizerConfig: JsonObject | null): boolean {
  const t = tokenizerConfig?.["chat_template"];
  return (typeof t === "string" && t.length > 0) || (Array.isArray(t) && t.length > 0);
}

/** genai_config.json files, the root one first, then CPU builds (the engine here runs on any machine). */
function genaiConfigPaths(files: ModelFileEntry[]): string[] {
  return files
    .map((f) => f.path)
    .filter((p) => posix.basename(p) === "genai_config.json")
    .sort((a, b) => depthOf(a) - depthOf(b) || Number(!/cpu/i.test(a)) - Number(!/cpu/i.test(b)) || a.localeCompare(b));
}

/**
 * ONNX models: a single `.onnx`, optimum exports, the transformers.js `onnx/` layout and onnxruntime-genai
 * folders. Reads config files and one graph's structure (never its weights). Null when there is no `.onnx` file.
 */
export async function detectOnnxModel(fs: ModelFileSystem, files: ModelFileEntry[], signal?: AbortSignal): Promise<FormatDetection | null> {
  let onnxFiles = files.filter((f) => isOnnxFile(f.path)).map(parseOnnxFileName);
  // ONNX has no magic bytes: a lone file with another name is ONNX only if it parses as a graph.
  const sniffing = onnxFiles.length === 0 && files.length === 1;
  if (sniffing) onnxFiles = [parseOnnxFileName(files[0]!)];
  if (onnxFiles.length === 0) return null;
  const present = new Set(files.map((f) => f.path));
  const sizes = new Map(files.map((f) => [f.path, f.size]));
  const warnings: string[] = [];
  const readJson = async (path: string, max = MAX_CONFIG_BYTES): Promise<JsonObject | null> => {
    const r = await readJsonFile(fs, present, path, max, signal);
    if (r.warning) warnings.push(r.warning);
    return r.value;
  };

  // onnxruntime-genai names its decoder in genai_config.json.
  let genai: JsonObject | null = null;
  let genaiPath: string | null = null;
  let primary: OnnxFileName | null = null;
  const genaiPaths = genaiConfigPaths(files);
  if (genaiPaths.length > 0) {
    genaiPath = genaiPaths[0]!;
    genai = await readJson(genaiPath);
    const genaiDir = posix.dirname(genaiPath) === "." ? "" : posix.dirname(genaiPath);
    const decoder = jsonString(jsonObject(jsonObject(genai?.["model"])?.["decoder"])?.["filename"]);
    if (decoder) {
      const where = resolveExternalLocation(genaiPath, decoder);
      primary = where.safe ? (onnxFiles.find((f) => f.path === where.path) ?? null) : null;
      if (!primary) warnings.push(`genai_config.json names decoder ${decoder}, which is ${where.safe ? "missing" : `unsafe (${where.why})`}`);
    }
    primary ??= choosePrimaryOnnx(onnxFiles.filter((f) => f.dir === genaiDir));
  }
  primary ??= choosePrimaryOnnx(onnxFiles)!;
  const main = primary;

  // config.json sits beside the graph, or one level up from a transformers.js `onnx/` folder, or at the root.
  const parent = posix.basename(main.dir) === "onnx" ? (posix.dirname(main.dir) === "." ? "" : posix.dirname(main.dir)) : null;
  const dirs = [main.dir, ...(parent !== null ? [parent] : []), ""];
  const configDir = dirs.find((d) => present.has(join(d, "config.json"))) ?? dirs.find((d) => present.has(join(d, "tokenizer_config.json"))) ?? main.dir;
  const config = await readJson(join(configDir, "config.json"));
  const tokenizerConfig = await readJson(join(configDir, "tokenizer_config.json"), MAX_TOKENIZER_CONFIG_BYTES);
  const hasChatTemplate = hasTemplate(tokenizerConfig) || present.has(join(configDir, "chat_template.jinja")) || present.has(join(configDir, "chat_template.json"));
  const ctx: ConfigContext = {
    hasChatTemplate,
    sentenceTransformers: SENTENCE_TRANSFORMERS_FILES.find((n) => present.has(join(configDir, n))) ?? null,
  };

  let summary: OnnxSummary | null = null;
  let graphError: string | null = null;
  /** Why onnxruntime would refuse the graph: then nothing serves it. */
  let invalid: string | null = null;
  const src = await fs.open(main.path, signal);
  try {
    summary = await readOnnxSummary(src, { signal });
  } catch (err) {
    if (!(err instanceof InvalidOnnxError)) throw err;
    graphError = err.message;
    warnings.push(`${main.path}: the graph could not be read (${err.message})`);
    // Past a read cap the graph is unverified, not broken: it stays servable.
    if (err.code !== "limit" && err.code !== "too-deep") invalid = err.message;
  } finally {
    await src.close();
  }
  if (summary) {
    const problems = validateOnnxSummary(summary);
    if (problems.length > 0) {
      invalid = graphError = problems.join("; ");
      warnings.push(`${main.path}: not a graph onnxruntime can load (${invalid})`);
    }
  }
  if (sniffing && (!summary || invalid !== null)) return null;

  const siblings = onnxFiles.filter((f) => f.dir === main.dir);
  const components = [...new Set(siblings.map((f) => f.component))].sort();
  const encoderDecoder = components.includes("encoder_model") && components.some((c) => c.startsWith("decoder"));
  const layout = genai
    ? "onnxruntime-genai"
    : posix.basename(main.dir) === "onnx"
      ? "transformers.js"
      : config && OPTIMUM_COMPONENTS.has(main.component)
        ? "optimum"
        : onnxFiles.length === 1
          ? "single-file"
          : "folder";

  const decision: TaskDecision =
    taskFromConfig(config, ctx) ??
    (genai ? taskFromGenaiConfig(genai, ctx) : null) ??
    (summary
      ? taskFromGraph(summary, ctx, encoderDecoder)
      : encoderDecoder
        ? { task: "text2text", reason: "encoder_model + decoder_model files (graph unreadable)" }
        : { task: "unknown", reason: "the graph could not be read and no config names a task" });

  // External data: each location must stay inside the model folder and exist.
  const externalPaths = new Set<string>();
  let unsafeExternalData = false;
  const externalData = (summary?.externalData ?? []).map((e) => {
    const where = resolveExternalLocation(main.path, e.location);
    if (!where.safe) {
      unsafeExternalData = true;
      warnings.push(`${main.path} references external data '${e.location}' outside the model folder (${where.why})`);
      return { ...e, path: null, exists: false, safe: false };
    }
    const exists = present.has(where.path);
    if (exists) externalPaths.add(where.path);
    else warnings.push(`${main.path} references external data ${where.path}, which is missing`);
    const size = sizes.get(where.path);
    if (exists && e.bytes !== null && size !== undefined && e.bytes > size) {
      warnings.push(`external data ${where.path} is ${size} bytes, the graph expects at least ${e.bytes}`);
    }
    return { ...e, path: where.path, exists, safe: true };
  });

  const genaiModel = jsonObject(genai?.["model"]);
  const genaiDir = genaiPath !== null && posix.dirname(genaiPath) !== "." ? posix.dirname(genaiPath) : "";
  const quantization = main.quantization ?? (genai ? quantizationFromFolder(genaiDir) : null) ?? (summary ? quantizationFromGraph(summary) : null);
  const architecture =
    jsonString(Array.isArray(config?.["architectures"]) ? (config["architectures"] as unknown[])[0] : null) ??
    jsonString(config?.["model_type"]) ??
    jsonString(genaiModel?.["type"]);
  const contextLength = jsonPositiveInt(genaiModel?.["context_length"]) ?? contextFromConfig(config);
  const parameterCount = summary && summary.initializerElements > 0 && !(quantization !== null && PACKED.has(quantization)) ? summary.initializerElements : null;

  const role = (path: string): FileRole => {
    const name = posix.basename(path);
    if (isOnnxFile(path)) return "weights";
    if (externalPaths.has(path) || ONNX_EXTERNAL_DATA.test(name)) return "external-data";
    if (CONFIG_FILES.has(name) || /(^|\/)1_Pooling\/config\.json$/.test(path)) return "config";
    if (TOKENIZER_FILES.has(name)) return "tokenizer";
    return "other";
  };
  const modelFiles: ModelFile[] = files.map((f) => ({ path: f.path, size: f.size, role: role(f.path) }));

  const describe = (list: OnnxSummary["inputs"]) => list.slice(0, MAX_LISTED_VALUES).map((v) => ({ name: v.name, type: v.elemType, shape: v.shape, kind: v.kind }));
  const defaultOpset = summary?.opsets.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? null;

  return {
    format: "onnx",
    task: decision.task,
    reason: invalid === null ? `ONNX ${layout} (${main.path}); ${decision.reason}` : `ONNX ${layout} (${main.path}) that onnxruntime cannot load: ${invalid}`,
    architecture,
    parameterCount,
    quantization,
    contextLength,
    hasChatTemplate,
    files: modelFiles,
    warnings,
    details: {
      layout,
      primaryFile: main.path,
      components,
      variants: onnxFiles.filter((f) => f.path !== main.path).map((f) => ({ path: f.path, component: f.component, quantization: f.quantization, size: f.size })),
      inputs: summary ? describe(summary.inputs) : null,
      outputs: summary ? describe(summary.outputs) : null,
      opset: defaultOpset,
      opsets: summary?.opsets ?? null,
      producer: summary?.producerName ? `${summary.producerName}${summary.producerVersion ? ` ${summary.producerVersion}` : ""}` : null,
      graphError,
      irVersion: summary?.irVersion ?? null,
      nodeCount: summary?.nodeCount ?? null,
      initializerCount: summary?.initializerCount ?? null,
      initializerTypes: summary?.initializerTypes ?? null,
      inlineDataBytes: summary?.inlineDataBytes ?? null,
      externalData,
      unsafeExternalData,
      genai: genai !== null,
      genaiConfig: genai
        ? {
            path: genaiPath,
            modelType: jsonString(genaiModel?.["type"]),
            contextLength: jsonPositiveInt(genaiModel?.["context_length"]),
            decoder: jsonString(jsonObject(genaiModel?.["decoder"])?.["filename"]),
            otherConfigs: genaiPaths.slice(1),
          }
        : null,
      bytesRead: summary?.bytesRead ?? null,
      ...(invalid === null ? {} : { invalidWeights: [`${main.path}: ${invalid}`] }),
    },
  };
}
