import type { ModelFileSystem } from "../ModelFileSystem.js";
import { isJsonObject, readJsonFile, readJsonValue } from "./readJsonFile.js";
import { safeRelativePath } from "./resolveShardIndex.js";

export interface SentenceTransformersInfo {
  /** The file that marks the folder as a sentence-transformers model. */
  marker: string;
  /** Module folders (`1_Pooling`, `2_Dense`, ...) whose files belong to the model. */
  moduleDirs: string[];
  /** Module class names in pipeline order (`Transformer`, `Pooling`, `Normalize`). */
  modules: string[];
  /** `mean`, `cls`, `max`, `lasttoken`, ...: how token vectors become one sentence vector. */
  pooling: string | null;
  normalize: boolean;
  maxSeqLength: number | null;
}

const MARKERS = ["modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"];
const POOLING_CONFIG = /^\d+_Pooling\/config\.json$/;
const MODULE_DIR = /^(\d+_[^/]+)\//;
const SMALL_JSON = 1 << 20;
const MAX_MODULES = 32;

/** The Pooling module's config keys, in the order sentence-transformers itself checks them. */
const POOLING_MODES: Array<[string, string]> = [
  ["pooling_mode_cls_token", "cls"],
  ["pooling_mode_mean_tokens", "mean"],
  ["pooling_mode_max_tokens", "max"],
  ["pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"],
  ["pooling_mode_weightedmean_tokens", "weightedmean"],
  ["pooling_mode_lasttoken", "lasttoken"],
];

/** Reads the small sentence-transformers files (modules.json, pooling config) when the folder has any. */
export async function readSentenceTransformersInfo(
  fs: ModelFileSystem,
  present: ReadonlySet<string>,
  warnings: string[],
  signal?: AbortSignal,
): Promise<SentenceTransformersInfo | null> {
  const poolingFile = [...present].find((p) => POOLING_CONFIG.test(p)) ?? null;
  const marker = MARKERS.find((m) => present.has(m)) ?? poolingFile;
  if (!marker) return null;

  const info: SentenceTransformersInfo = { marker, moduleDirs: [], modules: [], pooling: null, normalize: false, maxSeqLength: null };
  let poolingConfig = poolingFile;
  if (present.has("modules.json")) {
    const modules = await readJsonValue(fs, "modules.json", SMALL_JSON, warnings, signal);
    if (Array.isArray(modules)) {
      for (const m of modules.slice(0, MAX_MODULES)) {
        if (!isJsonObject(m)) continue;
        const type = typeof m.type === "string" ? (m.type.split(".").pop() ?? m.type) : "?";
        info.modules.push(type);
        if (type.includes("Normalize")) info.normalize = true;
        const dir = m.path === "" ? null : safeRelativePath(m.path);
        if (dir === null) continue;
        info.moduleDirs.push(dir);
        if (type.includes("Pooling") && present.has(`${dir}/config.json`)) poolingConfig = `${dir}/config.json`;
      }
    }
  }
  // Without modules.json the numbered folders (`1_Pooling/`, `2_Normalize/`) still say what belongs to the model.
  for (const p of present) {
    const dir = MODULE_DIR.exec(p)?.[1];
    if (dir && !info.moduleDirs.includes(dir)) info.moduleDirs.push(dir);
  }
  info.moduleDirs.sort();

  if (poolingConfig) {
    const pc = await readJsonFile(fs, poolingConfig, SMALL_JSON, warnings, signal);
    if (pc) info.pooling = POOLING_MODES.find(([key]) => pc[key] === true)?.[1] ?? null;
  }
  if (present.has("sentence_bert_config.json")) {
    const sb = await readJsonFile(fs, "sentence_bert_config.json", SMALL_JSON, warnings, signal);
    const len = sb?.max_seq_length;
    if (typeof len === "number" && Number.isSafeInteger(len) && len > 0) info.maxSeqLength = len;
  }
  return info;
}
