import type { ModelFileSystem } from "../ModelFileSystem.js";

export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Python's json module writes bare NaN/Infinity; JSON.parse refuses them, so a second try maps them to null. */
const PYTHON_NON_FINITE = /([:[,]\s*)-?(?:NaN|Infinity)(?=\s*[,\]}])/g;

/** Any JSON value, or undefined when the text is not JSON. */
function parseJson(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch {
    try {
      return JSON.parse(body.replace(PYTHON_NON_FINITE, "$1null"));
    } catch {
      return undefined;
    }
  }
}

/**
 * A small JSON file that must be an object (config.json, tokenizer_config.json, ...). Never throws for a bad file:
 * a warning is pushed and null returned, because one broken side file must not hide the model. Aborts still throw.
 */
export async function readJsonFile(fs: ModelFileSystem, path: string, maxBytes: number, warnings: string[], signal?: AbortSignal): Promise<JsonObject | null> {
  const v = await readJsonValue(fs, path, maxBytes, warnings, signal);
  if (v === undefined) return null;
  if (!isJsonObject(v)) {
    warnings.push(`${path} is not a JSON object; ignored`);
    return null;
  }
  return v;
}

/** Like readJsonFile for any JSON value (modules.json is an array); undefined after a warning. */
export async function readJsonValue(fs: ModelFileSystem, path: string, maxBytes: number, warnings: string[], signal?: AbortSignal): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readText(path, maxBytes, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    warnings.push(`${path} could not be read: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  const v = parseJson(text);
  if (v === undefined) warnings.push(`${path} is not valid JSON; ignored`);
  return v;
}
