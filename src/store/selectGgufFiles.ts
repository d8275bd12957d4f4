import type { GgufModelFiles } from "../detection/gguf/detectGgufModel.js";
import { groupGgufFiles, isProjectorFile } from "../detection/groupGgufFiles.js";
import type { ModelFileEntry } from "../detection/ModelFileSystem.js";
import { InvalidPullSourceError } from "./errors.js";

/**
 * Which quantisation `pull` takes when the source names none: the usual best size/quality trade-off first (what
 * Ollama and LM Studio default to), then larger-and-better, then smaller, then unquantised.
 */
export const GGUF_QUANT_PREFERENCE = [
  "Q4_K_M",
  "Q4_K_S",
  "Q5_K_M",
  "Q5_K_S",
  "Q4_0",
  "IQ4_XS",
  "IQ4_NL",
  "Q6_K",
  "Q8_0",
  "Q5_0",
  "Q4_1",
  "Q3_K_L",
  "Q3_K_M",
  "IQ3_M",
  "Q3_K_S",
  "IQ3_XS",
  "Q2_K",
  "IQ2_M",
  "IQ2_XS",
  "BF16",
  "F16",
  "F32",
] as const;

const QUANT_TOKEN = /(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|FP16|F16|FP32|F32)(?=[-_.]|$)/gi;

/** The quantisation named in a GGUF file name (`Qwen2.5-0.5B-Instruct-Q4_K_M.gguf` → `Q4_K_M`), or null. */
export function quantFromFileName(path: string): string | null {
  const name = (path.split("/").pop() ?? path).replace(/(-\d{5}-of-\d{5})?\.gguf$/i, "");
  let last: string | null = null;
  for (const m of name.matchAll(QUANT_TOKEN)) last = m[1]!.toUpperCase();
  if (last === "FP16") return "F16";
  if (last === "FP32") return "F32";
  return last;
}

function rank(quant: string | null): number {
  const i = quant === null ? -1 : (GGUF_QUANT_PREFERENCE as readonly string[]).indexOf(quant);
  return i < 0 ? GGUF_QUANT_PREFERENCE.length : i;
}

interface GgufChoice {
  group: GgufModelFiles;
  quant: string | null;
  /** Every file to fetch: the model (all split parts) and the vision projector beside it, if any. */
  files: ModelFileEntry[];
}

function filesOf(group: GgufModelFiles, all: ModelFileEntry[]): ModelFileEntry[] {
  let projector = group.projector;
  if (!projector) {
    // A repo with one projector and many quants: it belongs to whichever quant is pulled.
    const dir = group.main.path.includes("/") ? group.main.path.slice(0, group.main.path.lastIndexOf("/") + 1) : "";
    const beside = all.filter((f) => isProjectorFile(f.path) && /\.gguf$/i.test(f.path) && f.path.startsWith(dir) && !f.path.slice(dir.length).includes("/"));
    if (beside.length === 1) projector = beside[0]!;
  }
  return [group.main, ...group.shards, ...(projector ? [projector] : [])];
}

/**
 * Picks one GGUF model out of a repo listing: the file (or split model) the user named, the quantisation the user
 * named (`:q4_k_m`, any case), or the first available in GGUF_QUANT_PREFERENCE.
 */
export function selectGgufFiles(entries: ModelFileEntry[], wanted: string | null, repoLabel: string): GgufChoice {
  const groups = groupGgufFiles(entries);
  if (groups.length === 0) throw new InvalidPullSourceError(`${repoLabel} has no GGUF model files`);
  const describe = (g: GgufModelFiles) => ({ group: g, quant: quantFromFileName(g.main.path) });
  const all = groups.map(describe);
  const available = () => all.map((c) => c.quant ?? c.group.main.path).join(", ");
  let pick: { group: GgufModelFiles; quant: string | null } | undefined;
  if (wanted !== null) {
    pick = all.find((c) => c.group.main.path === wanted || c.group.shards.some((s) => s.path === wanted));
    if (!pick) {
      const matches = all.filter((c) => c.quant !== null && c.quant === wanted.toUpperCase());
      if (matches.length > 1) {
        throw new InvalidPullSourceError(
          `${repoLabel} has ${matches.length} ${wanted.toUpperCase()} files (${matches.map((c) => c.group.main.path).join(", ")}); name one file`,
        );
      }
      pick = matches[0];
    }
    if (!pick) throw new InvalidPullSourceError(`${repoLabel} has no file or quantisation '${wanted}'; available: ${available()}`);
  } else {
    pick = [...all].sort((a, b) => rank(a.quant) - rank(b.quant) || a.group.main.path.localeCompare(b.group.main.path))[0]!;
  }
  return { ...pick, files: filesOf(pick.group, entries) };
}
