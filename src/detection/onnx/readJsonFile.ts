import type { ModelFileSystem } from "../ModelFileSystem.js";

export type JsonObject = Record<string, unknown>;

interface JsonRead {
  value: JsonObject | null;
  /** Why a present file could not be used (too large, not JSON, not an object). */
  warning: string | null;
}

/** Reads a small JSON object file; a missing file is `{value: null, warning: null}`, a broken one a warning. */
export async function readJsonFile(fs: ModelFileSystem, present: ReadonlySet<string>, path: string, maxBytes: number, signal?: AbortSignal): Promise<JsonRead> {
  if (!present.has(path)) return { value: null, warning: null };
  let text: string;
  try {
    text = await fs.readText(path, maxBytes, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    return { value: null, warning: `${path} could not be read: ${(err as Error).message}` };
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { value: null, warning: `${path} is not a JSON object` };
    }
    return { value: value as JsonObject, warning: null };
  } catch (err) {
    return { value: null, warning: `${path} is not valid JSON: ${(err as Error).message}` };
  }
}

export function jsonString(v: unknown): string | null {
  return typeof v === "string" && v.length > 0 ? v : null;
}

export function jsonObject(v: unknown): JsonObject | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as JsonObject) : null;
}

/** A positive integer that fits an int32 (context lengths, token counts). */
export function jsonPositiveInt(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v > 0 && v < 2 ** 31 ? v : null;
}
