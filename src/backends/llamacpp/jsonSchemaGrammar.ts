import { InvalidRequestError } from "../../core/errors.js";
import { MAX_SCHEMA_BYTES, SCHEMA_ANNOTATIONS as ANNOTATIONS, SCHEMA_CONSTRAINTS as CONSTRAINTS } from "../generation/jsonSchemaKeywords.js";

const FORMATS = new Set(["date-time", "date", "time"]);
export { MAX_SCHEMA_BYTES };

/**
 * A JSON Schema as node-llama-cpp's grammar builder takes it, or a 400 naming the first keyword it cannot enforce
 * (`pattern`, `minimum`, `allOf`, ...): a constraint the grammar would silently drop is refused instead. `anyOf`
 * becomes `oneOf` (generating a value that fits one branch fits either), `definitions` becomes `$defs`.
 */
export function toGrammarSchema(schema: Record<string, unknown>, param: string): Record<string, unknown> {
  if (JSON.stringify(schema).length > MAX_SCHEMA_BYTES) {
    throw new InvalidRequestError(`'${param}' is larger than ${MAX_SCHEMA_BYTES / 1024} KiB, the most this server compiles into a grammar.`, {
      param,
      code: "schema_too_large",
    });
  }
  return convert(schema, param) as Record<string, unknown>;
}

function convert(node: unknown, path: string): unknown {
  if (typeof node === "boolean") {
    if (node) return {}; // `true`: anything
    throw unsupported(path, "the schema `false`");
  }
  if (node === null || typeof node !== "object" || Array.isArray(node)) {
    throw new InvalidRequestError(`'${path}' must be a JSON Schema object.`, { param: path, code: "invalid_schema" });
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    const at = `${path}.${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!CONSTRAINTS.has(key)) throw unsupported(at, `the keyword '${key}'`);
    switch (key) {
      case "properties":
      case "$defs":
      case "definitions":
        out[key === "definitions" ? "$defs" : key] = mapValues(value, at);
        break;
      case "items":
      case "additionalProperties":
        out[key] = typeof value === "boolean" ? value : convert(value, at);
        break;
      case "prefixItems":
      case "oneOf":
      case "anyOf":
        if (!Array.isArray(value)) throw new InvalidRequestError(`'${at}' must be an array of schemas.`, { param: at, code: "invalid_schema" });
        out[key === "anyOf" ? "oneOf" : key] = value.map((v, i) => convert(v, `${at}[${i}]`));
        break;
      case "format":
        if (typeof value !== "string" || !FORMATS.has(value)) throw unsupported(at, `the format '${String(value)}'`);
        out[key] = value;
        break;
      case "$ref":
        if (typeof value !== "string" || !/^#\/(\$defs|definitions)\/[^/]+$/.test(value)) throw unsupported(at, `the reference '${String(value)}' (only #/$defs/...)`);
        out[key] = value.replace("#/definitions/", "#/$defs/");
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

function mapValues(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidRequestError(`'${path}' must be an object of schemas.`, { param: path, code: "invalid_schema" });
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, `${path}.${k}`)]));
}

function unsupported(param: string, what: string): InvalidRequestError {
  return new InvalidRequestError(`'${param}': ${what} cannot be enforced by the node-llama-cpp engine's grammar; remove it or use another engine.`, {
    param,
    code: "unsupported_schema",
  });
}
