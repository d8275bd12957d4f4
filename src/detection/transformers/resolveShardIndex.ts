import { isJsonObject, type JsonObject } from "./readJsonFile.js";

interface ResolvedShardIndex {
  /** Shards named by the index that exist, in first-mention order, as root-relative paths. */
  shards: string[];
  /** Names that would be safe but are not in the listing. */
  missing: string[];
  /** Names that escape the model root (`..`, absolute, drive letters); never opened. */
  unsafe: string[];
  /** `metadata.total_size` when it is a plausible byte count. */
  totalSize: number | null;
  tensorCount: number;
  /** Why the index could not be used at all (no weight_map); null when it could. */
  error: string | null;
}

/** No published model has anywhere near this many shards; a larger index is corrupt or hostile. */
const MAX_SHARDS = 4096;

/**
 * `a/./b.safetensors` → `a/b.safetensors`; null for anything that could leave the root. Backslashes count as
 * separators so a Windows-style `..\\..\\x` is caught too.
 */
export function safeRelativePath(name: unknown, baseDir = ""): string | null {
  if (typeof name !== "string" || name.length === 0 || name.length > 1024 || name.includes("\0")) return null;
  if (/^[/\\]/.test(name) || /^[A-Za-z]:/.test(name)) return null;
  const parts: string[] = [];
  for (const seg of `${baseDir}/${name}`.split(/[/\\]/)) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return null;
    parts.push(seg);
  }
  return parts.length > 0 ? parts.join("/") : null;
}

/** Follows a `*.index.json` weight_map to the shard files it names, refusing paths outside the model root. */
export function resolveShardIndex(index: JsonObject, indexPath: string, present: ReadonlySet<string>): ResolvedShardIndex {
  const out: ResolvedShardIndex = { shards: [], missing: [], unsafe: [], totalSize: null, tensorCount: 0, error: null };
  const map = index.weight_map;
  if (!isJsonObject(map)) {
    out.error = `${indexPath} has no weight_map object`;
    return out;
  }
  const slash = indexPath.lastIndexOf("/");
  const baseDir = slash >= 0 ? indexPath.slice(0, slash) : "";
  const seen = new Set<string>();
  const paths = new Set<string>();
  for (const value of Object.values(map)) {
    out.tensorCount++;
    const name = (typeof value === "string" ? value : String(JSON.stringify(value))).slice(0, 300);
    if (seen.has(name)) continue;
    seen.add(name);
    if (seen.size > MAX_SHARDS) {
      out.error = `${indexPath} names more than ${MAX_SHARDS} shards`;
      return out;
    }
    const path = safeRelativePath(value, baseDir);
    if (path === null) out.unsafe.push(name);
    else if (!paths.has(path)) {
      paths.add(path);
      (present.has(path) ? out.shards : out.missing).push(path);
    }
  }
  const meta = index.metadata;
  const total = isJsonObject(meta) ? meta.total_size : undefined;
  if (typeof total === "number" && Number.isSafeInteger(total) && total >= 0) out.totalSize = total;
  return out;
}
