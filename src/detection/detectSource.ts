import { stat } from "node:fs/promises";
import { chooseEngine } from "./chooseEngine.js";
import type { Detection, EngineName, FormatDetection } from "../core/detectionSchema.js";
import { detectGgufModel, type GgufModelFiles } from "./gguf/detectGgufModel.js";
import { InvalidGgufError } from "./gguf/readGgufHeader.js";
import { groupGgufFiles, isProjectorFile } from "./groupGgufFiles.js";
import { detectLiteRtModel } from "./litert/detectLiteRtModel.js";
import { LocalModelFileSystem, describeSkippedLink, type ModelFileEntry, type ModelFileSystem, type SkippedLink } from "./ModelFileSystem.js";
import { detectOnnxModel } from "./onnx/detectOnnxModel.js";
import { sniffMagic } from "./sniffMagic.js";
import { detectTransformersModel } from "./transformers/detectTransformersModel.js";

export class DetectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DetectionError";
  }
}

export interface RemoteSource {
  fs: ModelFileSystem;
  /** A single file named in the source (`owner/name:file.gguf`). */
  file: string | null;
}

interface DetectSourceOptions {
  signal?: AbortSignal;
  /** Opens a source that is not a local path (a Hugging Face repo id); resolves null when it is not one. */
  openRemote?: (source: string, signal?: AbortSignal) => Promise<RemoteSource | null>;
  engineOverride?: EngineName;
  /** More real folders that symlinks in a local source may lead into (the models folder it sits in). */
  linkRoots?: string[];
  /** Told about each symlink of a local source that was not followed (dangling, or leading elsewhere). */
  onSkippedLink?: (link: SkippedLink, source: string) => void;
}

function finish(source: string, d: FormatDetection, options: DetectSourceOptions, extra: EngineName[] = []): Detection {
  const choice = chooseEngine(d, { override: options.engineOverride, extraAlternatives: extra });
  const warnings = [...d.warnings];
  if (choice.engine === null && d.format === "pytorch") {
    warnings.push("not served: pickle weights can run code when loaded; allow them explicitly in the model's config");
  }
  return { source, ...d, warnings, engine: choice.engine, alternatives: choice.alternatives };
}

function unknown(reason: string, files: ModelFileEntry[]): FormatDetection {
  return {
    format: "unknown",
    task: "unknown",
    reason,
    architecture: null,
    parameterCount: null,
    quantization: null,
    contextLength: null,
    hasChatTemplate: false,
    files: files.map((f) => ({ path: f.path, size: f.size, role: "other" as const })),
    warnings: [],
    details: {},
  };
}

/**
 * Classifies whatever `source` names: a local file, a local folder (one model, or a folder of GGUF files = several
 * models), or a Hugging Face repo. Returns one detection per model found.
 */
export async function detectSource(source: string, options: DetectSourceOptions = {}): Promise<Detection[]> {
  const { signal } = options;
  let fs: ModelFileSystem;
  let onlyFile: string | null = null;
  const local = await stat(source).catch(() => null);
  let skipped: SkippedLink[] = [];
  if (local) {
    const localFs = await LocalModelFileSystem.create(source, { linkRoots: options.linkRoots });
    fs = localFs;
    skipped = localFs.skippedLinks;
  } else {
    const remote = await options.openRemote?.(source, signal);
    if (!remote) throw new DetectionError(`no such file or folder${options.openRemote ? ", and not a Hugging Face repo id" : ""}`);
    fs = remote.fs;
    onlyFile = remote.file;
  }
  let files = await fs.list(signal);
  if (onlyFile !== null) {
    const wanted = onlyFile;
    if (!files.some((f) => f.path === wanted)) throw new DetectionError(`${fs.label} has no file ${wanted}`);
    const group = groupGgufFiles(files).find((g) => g.main.path === wanted || g.shards.some((s) => s.path === wanted));
    files = group ? [group.main, ...group.shards, ...(group.projector ? [group.projector] : [])] : files.filter((f) => f.path === wanted);
  }
  for (const l of skipped) options.onSkippedLink?.(l, source);
  let out: Detection[];
  if (files.length === 0) out = [finish(source, unknown(`${fs.label} holds no files`, files), options)];
  else {
    const single = local?.isFile() === true || (onlyFile !== null && files.length === 1);
    out = single ? [await detectOneFile(fs, files[0]!, source, options)] : await detectFolder(fs, files, source, options);
  }
  // A model whose files are links that lead elsewhere would otherwise just look incomplete.
  if (skipped.length > 0) {
    const notes = skipped.slice(0, 16).map(describeSkippedLink);
    for (const d of out) d.warnings.push(...notes);
  }
  return out;
}

async function detectOneFile(fs: ModelFileSystem, file: ModelFileEntry, source: string, options: DetectSourceOptions): Promise<Detection> {
  const { signal } = options;
  const magic = await sniffMagic(fs, file.path, signal);
  const files = [file];
  let d: FormatDetection | null = null;
  switch (magic) {
    case "gguf":
      d = await detectGgufModel(fs, { main: file, shards: [], projector: null }, signal);
      break;
    case "tflite":
      d = await detectLiteRtModel(fs, files, signal);
      break;
    case "zip":
      d = (await detectLiteRtModel(fs, files, signal)) ?? (await detectTransformersModel(fs, files, signal));
      break;
    case "pickle":
    case "safetensors":
      d = await detectTransformersModel(fs, files, signal);
      break;
    case "none":
      d = (await detectOnnxModel(fs, files, signal)) ?? (await detectLiteRtModel(fs, files, signal));
      break;
  }
  return finish(source, d ?? unknown(`${file.path}: no known magic bytes (GGUF, TFL3, ZIP, pickle, safetensors) and not an ONNX graph`, files), options);
}

/** In a folder, one broken GGUF is listed as not servable instead of failing its siblings' detection. */
async function detectGgufOrInvalid(fs: ModelFileSystem, m: GgufModelFiles, signal?: AbortSignal): Promise<FormatDetection> {
  try {
    return await detectGgufModel(fs, m, signal);
  } catch (err) {
    if (!(err instanceof InvalidGgufError)) throw err;
    const files = [m.main, ...m.shards];
    return {
      ...unknown(`${m.main.path}: invalid GGUF: ${err.message}`, files),
      format: "gguf",
      files: files.map((f) => ({ path: f.path, size: f.size, role: "weights" as const })),
      warnings: [`${m.main.path} cannot be served: ${err.message}`],
      details: { invalidWeights: [`${m.main.path}: ${err.message}`] },
    };
  }
}

async function detectFolder(fs: ModelFileSystem, files: ModelFileEntry[], source: string, options: DetectSourceOptions): Promise<Detection[]> {
  const { signal } = options;
  // Only files whose bytes say GGUF count as GGUF models, whatever their extension says.
  const ggufCandidates: ModelFileEntry[] = [];
  for (const f of files) {
    if (/\.gguf$/i.test(f.path) && (await sniffMagic(fs, f.path, signal)) === "gguf") ggufCandidates.push(f);
  }
  const [transformers, onnx, litert] = [
    await detectTransformersModel(fs, files, signal),
    await detectOnnxModel(fs, files, signal),
    await detectLiteRtModel(fs, files, signal),
  ];
  const hfWeights = transformers?.format === "safetensors" || onnx !== null;
  const ggufModels = groupGgufFiles(ggufCandidates);
  if (ggufModels.length > 0 && !hfWeights) {
    const out: Detection[] = [];
    for (const m of ggufModels) out.push(finish(`${source.replace(/\/+$/, "")}/${m.main.path}`, await detectGgufOrInvalid(fs, m, signal), options));
    return out;
  }
  // One model in several formats: the richest format serves it, the others are alternatives.
  const ranked = [...new Set([transformers?.format === "safetensors" ? transformers : null, onnx, transformers, litert])].filter((d): d is FormatDetection => d !== null);
  const primary = ranked[0];
  if (!primary) {
    const projectorsOnly = ggufCandidates.length > 0 && ggufCandidates.every((f) => isProjectorFile(f.path));
    return [finish(source, unknown(projectorsOnly ? "only vision projector (mmproj) files, no model" : `no model files recognised in ${fs.label}`, files), options)];
  }
  const extra = ranked.slice(1).flatMap((d) => chooseEngine(d).engine?.name ?? []);
  return [finish(source, primary, options, extra)];
}
