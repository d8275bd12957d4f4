import { posix } from "node:path";
import type { LiteRtDetails } from "../../core/detectionDetails.js";
import type { DetectedTask, FileRole, FormatDetection } from "../../core/detectionSchema.js";
import type { ByteSource } from "../gguf/ByteSource.js";
import type { ModelFileEntry, ModelFileSystem } from "../ModelFileSystem.js";
import { InvalidLiteRtError } from "./InvalidLiteRtError.js";
import { MAX_LLM_METADATA_BYTES, readLlmMetadata, type LlmMetadataSummary } from "./readLlmMetadata.js";
import { hasLitertlmMagic, readLitertlmHeader, type LitertlmHeader } from "./readLitertlmHeader.js";
import { hasTfl3Identifier, readTfliteSummary, type ReadTfliteSummaryOptions, type TfliteSummary } from "./readTfliteSummary.js";
import { readStoredEntryHead, readZipDirectory, storedEntryData, type ZipEntry } from "./readZipDirectory.js";

const LITERT_EXT = /\.(tflite|lite|task|litertlm)$/i;
/** Other files worth 32 bytes of look: MediaPipe's older LLM files are TFLite named `.bin`. */
const MAYBE_LITERT = /(^|\/)[^/.]+$|\.bin$/i;
const NOT_LITERT_BIN = /(^|\/)(pytorch_model|training_args|optimizer|scheduler|rng_state|adapter_model)[^/]*\.bin$/i;
const MAX_PROBES = 16;
const MAX_VERIFIED_ENTRIES = 16;
const TOKENIZER_NAMES = /(^|\/)(tokenizer\.(model|json)|tokenizer_config\.json|spiece\.model|[^/]*\.spm)$/i;

type Kind = "litertlm" | "task" | "tflite";

interface BundleEntry {
  name: string;
  size: number;
  compressed: boolean;
  /** TFL3 identifier checked in a stored entry: true/false; null when compressed or not checked. */
  tflite: boolean | null;
}

interface Candidate {
  file: ModelFileEntry;
  kind: Kind;
  entries?: BundleEntry[];
  models?: string[];
  tokenizer?: string | null;
  llm?: boolean;
  summary?: TfliteSummary | null;
  header?: LitertlmHeader | null;
  /** The LlmMetadata of a .litertlm section or a .task METADATA entry; null when absent or too large to read. */
  llmMetadata?: LlmMetadataSummary | null;
}

/** A file with LiteRT magic that the runtime would refuse, and why. */
interface Rejection {
  path: string;
  rejected: string;
}

/** Models inside one container whose structure is checked (each check reads at most 2 MiB). */
const MAX_VALIDATED_MODELS = 4;

function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

async function withSource<T>(
  fs: ModelFileSystem,
  path: string,
  signal: AbortSignal | undefined,
  f: (src: Awaited<ReturnType<ModelFileSystem["open"]>>) => Promise<T>,
): Promise<T> {
  const src = await fs.open(path, signal);
  try {
    return await f(src);
  } finally {
    await src.close();
  }
}

/** Names MediaPipe gives the models and tokenizer inside an LLM `.task` bundle (TF_LITE_PREFILL_DECODE, ...). */
function looksLikeModelEntry(name: string): boolean {
  return /\.tflite$/i.test(name) || /(^|\/)TF_LITE_[A-Z0-9_]+$/.test(name);
}

/**
 * Checks a TFLite model (a file, or a region of one) with readTfliteSummary. A read cap reached leaves it
 * unverified: it is kept, with a warning. Anything else the interpreter would refuse rejects it.
 */
async function checkTflite(
  src: ByteSource,
  path: string,
  where: string,
  warnings: string[],
  options: ReadTfliteSummaryOptions,
): Promise<TfliteSummary | null | Rejection> {
  try {
    return await readTfliteSummary(src, options);
  } catch (err) {
    if (!(err instanceof InvalidLiteRtError)) throw err;
    if (err.code === "limit") {
      warnings.push(`${where}: the TFLite model was not fully checked (${err.message})`);
      return null;
    }
    return { path, rejected: `${where}: not a TFLite model the runtime can load (${err.message})` };
  }
}

/** An LlmMetadata proto at [offset, offset+size) of the file; null when larger than the read cap. */
async function llmMetadataAt(src: ByteSource, offset: number, size: number, signal?: AbortSignal): Promise<LlmMetadataSummary | null> {
  if (size > MAX_LLM_METADATA_BYTES) return null;
  const bytes = await src.read(offset, size, signal);
  if (bytes.length !== size) throw new InvalidLiteRtError("the LlmMetadata runs past the end of the file");
  return readLlmMetadata(bytes);
}

/** A ZIP entry name that would land outside the archive's folder if it were extracted (absolute, `..`, a drive). */
function escapesFolder(name: string): boolean {
  const n = name.replace(/\\/g, "/");
  return n.startsWith("/") || /^[A-Za-z]:/.test(n) || n.split("/").includes("..");
}

function isRejection(x: unknown): x is Rejection {
  return typeof x === "object" && x !== null && "rejected" in x;
}

async function inspectTflite(fs: ModelFileSystem, file: ModelFileEntry, warnings: string[], signal?: AbortSignal): Promise<Candidate | Rejection> {
  const summary = await withSource(fs, file.path, signal, (src) => checkTflite(src, file.path, file.path, warnings, { signal }));
  return isRejection(summary) ? summary : { file, kind: "tflite", summary };
}

async function inspectLitertlm(fs: ModelFileSystem, file: ModelFileEntry, warnings: string[], signal?: AbortSignal): Promise<Candidate | Rejection> {
  return withSource(fs, file.path, signal, async (src) => {
    let header: LitertlmHeader;
    try {
      header = await readLitertlmHeader(src, { signal });
    } catch (err) {
      if (!(err instanceof InvalidLiteRtError)) throw err;
      return { path: file.path, rejected: `${file.path}: LITERTLM magic found but the header is not valid (${err.message})` };
    }
    const models = header.sections.filter((s) => s.dataType === "TFLiteModel");
    if (models.length === 0) return { path: file.path, rejected: `${file.path}: the .litertlm container holds no TFLiteModel section` };
    for (const s of models.slice(0, MAX_VALIDATED_MODELS)) {
      const where = `${file.path} (TFLiteModel section at byte ${s.begin})`;
      const r = await checkTflite(src, file.path, where, warnings, { signal, base: s.begin, length: s.end - s.begin, checkExternalBuffers: false });
      if (isRejection(r)) return r;
    }
    const meta = header.sections.find((s) => s.dataType === "LlmMetadataProto");
    let llmMetadata: LlmMetadataSummary | null = null;
    if (meta) {
      try {
        llmMetadata = await llmMetadataAt(src, meta.begin, meta.end - meta.begin, signal);
      } catch (err) {
        if (!(err instanceof InvalidLiteRtError)) throw err;
        return { path: file.path, rejected: `${file.path}: its LlmMetadata section is not valid (${err.message})` };
      }
    }
    return { file, kind: "litertlm" as const, header, llmMetadata };
  });
}

async function inspectBundle(fs: ModelFileSystem, file: ModelFileEntry, warnings: string[], signal?: AbortSignal): Promise<Candidate | Rejection> {
  return withSource(fs, file.path, signal, async (src) => {
    let entries: ZipEntry[];
    try {
      entries = (await readZipDirectory(src, { signal, maxEntries: 1024 })).entries;
    } catch (err) {
      if (err instanceof InvalidLiteRtError) return { path: file.path, rejected: `${file.path}: ${err.message}` };
      throw err;
    }
    const out: BundleEntry[] = [];
    const stored = new Map<string, ZipEntry>();
    let verified = 0;
    const escaping = entries.find((e) => escapesFolder(e.name));
    if (escaping) return { path: file.path, rejected: `${file.path}: entry ${JSON.stringify(escaping.name)} points outside the archive (path traversal)` };
    for (const e of entries) {
      if (e.name.endsWith("/")) continue;
      const b: BundleEntry = { name: e.name, size: e.size, compressed: e.method !== 0, tflite: null };
      // Model entries and extension-less ones (MediaPipe's) get their identifier checked, a few bytes each.
      if ((looksLikeModelEntry(e.name) || !/\.[^/]+$/.test(e.name)) && verified < MAX_VERIFIED_ENTRIES && e.method === 0 && e.size >= 8) {
        verified++;
        try {
          const head = await readStoredEntryHead(src, e, 8, signal);
          if (head) b.tflite = hasTfl3Identifier(head);
        } catch (err) {
          if (!(err instanceof InvalidLiteRtError)) throw err;
          return { path: file.path, rejected: `${file.path}: ${err.message}` };
        }
      }
      if (e.method === 0) stored.set(e.name, e);
      out.push(b);
    }
    const models = out.filter((b) => b.tflite === true || (b.tflite === null && looksLikeModelEntry(b.name))).map((b) => b.name);
    if (models.length === 0) return { path: file.path, rejected: `${file.path}: a ZIP without TFLite models, not a MediaPipe task bundle` };
    // MediaPipe maps bundle entries in place and refuses compressed ones ("Expected uncompressed zip archive"): so
    // nothing here is ever inflated, and a compressed entry (a ZIP bomb's only way to grow) rejects the bundle.
    const compressed = out.find((b) => b.compressed);
    if (compressed) return { path: file.path, rejected: `${file.path}: entry ${compressed.name} is compressed; MediaPipe reads .task entries only stored` };
    for (const name of models.slice(0, MAX_VALIDATED_MODELS)) {
      const e = stored.get(name)!;
      let data;
      try {
        data = await storedEntryData(src, e, signal);
      } catch (err) {
        if (!(err instanceof InvalidLiteRtError)) throw err;
        return { path: file.path, rejected: `${file.path}: ${err.message}` };
      }
      if (!data) continue;
      const r = await checkTflite(src, file.path, `${file.path} (entry ${name})`, warnings, { signal, base: data.offset, length: data.size });
      if (isRejection(r)) return r;
    }
    let llmMetadata: LlmMetadataSummary | null = null;
    const metadataEntry = stored.get("METADATA");
    if (metadataEntry) {
      try {
        const data = await storedEntryData(src, metadataEntry, signal);
        if (data) llmMetadata = await llmMetadataAt(src, data.offset, data.size, signal);
      } catch (err) {
        if (!(err instanceof InvalidLiteRtError)) throw err;
        // MediaPipe's own .task bundles carry another proto (LlmParameters) here: not a reason to refuse the bundle.
        warnings.push(`${file.path}: its METADATA entry is not an LlmMetadata proto (${err.message})`);
      }
    }
    const tokenizer = out.find((b) => /tokenizer/i.test(b.name) || /\.spm$/i.test(b.name))?.name ?? null;
    const llm = models.some((m) => /PREFILL_DECODE/i.test(m)) || (models.some((m) => /PREFILL/i.test(m)) && models.some((m) => /DECODE/i.test(m)));
    return { file, kind: "task" as const, entries: out, models, tokenizer, llm, llmMetadata };
  });
}

function quantizationFromName(path: string): string | null {
  const m = /(?:^|[-_.])(int4|int8|q4|q8|fp16|f16|fp32|f32|bf16)(?=[-_.]|$)/i.exec(posix.basename(path));
  if (!m) return null;
  const q = m[1]!.toLowerCase();
  return ({ q8: "int8", q4: "int4", f16: "fp16", f32: "fp32" } as Record<string, string>)[q] ?? q;
}

/** Community LiteRT LLM files carry their KV-cache size in the name (`..._ekv1280.task`). */
function contextFromName(path: string): number | null {
  const m = /(?:^|[-_.])ekv(\d{2,7})(?=[-_.]|$)/i.exec(posix.basename(path));
  const n = m ? Number(m[1]) : 0;
  return n > 0 ? n : null;
}

function tfliteTask(s: TfliteSummary): { task: DetectedTask; reason: string } {
  const keys = [...s.signatures.map((x) => x.key), ...s.subgraphNames];
  if (keys.some((k) => /prefill/i.test(k)) && keys.some((k) => /decode/i.test(k))) {
    return {
      task: "text-generation",
      reason: `signatures ${keys
        .filter((k) => /prefill|decode/i.test(k))
        .slice(0, 4)
        .join(", ")} (LLM prefill/decode)`,
    };
  }
  const llmMeta = s.metadata.find((m) => /LlmParameters|spm_vocab/i.test(m));
  if (llmMeta) return { task: "text-generation", reason: `metadata ${llmMeta} (MediaPipe LLM)` };
  const sigs = s.signatures.map((x) => x.key).filter(Boolean);
  return { task: "unknown", reason: `no task hint (${sigs.length ? `signatures ${sigs.slice(0, 4).join(", ")}` : "no signatures"})` };
}

/**
 * LiteRT (TensorFlow Lite) models: `.tflite` FlatBuffers (the `TFL3` identifier decides, not the extension),
 * MediaPipe `.task` ZIP bundles and LiteRT-LM `.litertlm` containers. Null when none is found.
 */
export async function detectLiteRtModel(fs: ModelFileSystem, files: ModelFileEntry[], signal?: AbortSignal): Promise<FormatDetection | null> {
  const single = files.length === 1;
  const probes = single
    ? files
    : [
        ...files.filter((f) => LITERT_EXT.test(f.path)),
        ...files.filter((f) => !LITERT_EXT.test(f.path) && MAYBE_LITERT.test(f.path) && !NOT_LITERT_BIN.test(f.path)),
      ].slice(0, MAX_PROBES);
  const warnings: string[] = [];
  const candidates: Candidate[] = [];
  const rejected: Rejection[] = [];
  for (const f of probes) {
    const named = LITERT_EXT.test(f.path);
    if (f.size < 8) {
      if (named) warnings.push(`${f.path} is too small to be a LiteRT model`);
      continue;
    }
    const head = await withSource(fs, f.path, signal, (src) => src.read(0, 32, signal));
    let found: Candidate | Rejection | null = null;
    if (hasLitertlmMagic(head)) found = await inspectLitertlm(fs, f, warnings, signal);
    else if (hasTfl3Identifier(head)) found = await inspectTflite(fs, f, warnings, signal);
    else if (isZip(head) && (single || /\.task$/i.test(f.path))) {
      found = await inspectBundle(fs, f, warnings, signal);
      // A ZIP not named .task (a PyTorch checkpoint given alone) is simply not LiteRT.
      if (isRejection(found) && !named) found = null;
    } else if (named) {
      warnings.push(`${f.path} is named like a LiteRT model but has no TFL3 identifier, ZIP or LITERTLM magic: ignored`);
    }
    if (isRejection(found)) {
      rejected.push(found);
      warnings.push(found.rejected);
    } else if (found) candidates.push(found);
  }
  if (candidates.length === 0) return rejected.length > 0 ? invalidDetection(files, rejected, warnings) : null;

  const rank = (c: Candidate): number => (c.kind === "litertlm" ? 0 : c.kind === "task" ? (c.llm ? 1 : 2) : 3);
  candidates.sort((a, b) => rank(a) - rank(b) || b.file.size - a.file.size || a.file.path.localeCompare(b.file.path));
  const main = candidates[0]!;

  let task: DetectedTask;
  let reason: string;
  const details: LiteRtDetails = {
    primaryFile: main.file.path,
    container: main.kind,
    models: candidates.map((c) => ({ path: c.file.path, container: c.kind, size: c.file.size })),
  };
  if (main.kind === "litertlm") {
    const header = main.header ?? null;
    const modelTypes = header?.sections.map((s) => s.items["model_type"]).filter((t): t is string => typeof t === "string") ?? [];
    // A bundle with its own chat template serves chat; without one, completions only.
    task = main.llmMetadata?.hasJinjaTemplate ? "chat" : "text-generation";
    reason = header
      ? `LiteRT-LM container v${header.version} (${header.sections.map((s) => s.dataType + (typeof s.items["model_type"] === "string" ? `:${s.items["model_type"]}` : "")).join(", ")})`
      : "LiteRT-LM container";
    details.litertlm = header ? { version: header.version, systemMetadata: header.systemMetadata, sections: header.sections, modelTypes } : null;
  } else if (main.kind === "task") {
    task = main.llm ? (main.llmMetadata?.hasJinjaTemplate ? "chat" : "text-generation") : "unknown";
    reason = main.llm
      ? `MediaPipe task bundle with an LLM prefill/decode model (${main.models!.join(", ")})`
      : `MediaPipe task bundle with ${main.models!.length} TFLite model(s) and no LLM prefill/decode model`;
    details.bundle = { entries: main.entries, models: main.models, tokenizer: main.tokenizer, llm: main.llm };
  } else {
    const summary = main.summary ?? null;
    const t = summary ? tfliteTask(summary) : { task: "unknown" as const, reason: "model not fully checked" };
    task = t.task;
    reason = `TFLite FlatBuffer (TFL3); ${t.reason}`;
    details.tflite = summary;
  }

  const modelPaths = new Set(candidates.map((c) => c.file.path));

  return {
    format: "litert",
    task,
    reason: `${main.file.path}: ${reason}`,
    architecture: null,
    parameterCount: null,
    quantization: quantizationFromName(main.file.path),
    contextLength: main.llmMetadata?.maxNumTokens ?? contextFromName(main.file.path),
    hasChatTemplate: main.llmMetadata?.hasJinjaTemplate ?? false,
    files: files.map((f) => ({ path: f.path, size: f.size, role: roleOf(f.path, modelPaths) })),
    warnings,
    details,
  };
}

function roleOf(path: string, modelPaths: Set<string>): FileRole {
  if (modelPaths.has(path)) return "weights";
  if (TOKENIZER_NAMES.test(path)) return "tokenizer";
  if (/\.json$/i.test(path)) return "config";
  return "other";
}

/** Only files the runtime would refuse: LiteRT by their magic, listed with why, and nothing may serve them. */
function invalidDetection(files: ModelFileEntry[], rejected: Rejection[], warnings: string[]): FormatDetection {
  const modelPaths = new Set(rejected.map((r) => r.path));
  return {
    format: "litert",
    task: "unknown",
    reason: rejected[0]!.rejected,
    architecture: null,
    parameterCount: null,
    quantization: null,
    contextLength: null,
    hasChatTemplate: false,
    files: files.map((f) => ({ path: f.path, size: f.size, role: roleOf(f.path, modelPaths) })),
    warnings,
    details: { invalidWeights: rejected.map((r) => r.rejected) },
  };
}
