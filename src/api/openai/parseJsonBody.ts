import { InvalidRequestError } from "../../core/errors.js";
import { formatParamPath } from "./parseBody.js";

/** Methods whose requests carry a body by definition: for the others an empty JSON body is no body at all. */
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

/** Only text that could spell a forbidden key (directly or with `\u` escapes) is walked after parsing. */
const MAY_HAVE_FORBIDDEN_KEY = /__proto__|prototype|\\u/;

/**
 * The JSON body parser: JSON.parse (which stores `__proto__` as a plain own key, never as a prototype), then a
 * refusal of the keys that turn into prototype pollution once an object is merged elsewhere (`__proto__`, and
 * `constructor` holding a `prototype`, as secure-json-parse defines them). Refused bodies are told which key and
 * where, rather than being called invalid JSON. An empty body is an error for POST/PUT/PATCH and no body otherwise
 * (a DELETE or OPTIONS sent with a JSON content type and nothing in it).
 */
export function parseJsonBody(text: string, method: string): unknown {
  if (text.trim() === "") {
    if (!BODY_METHODS.has(method)) return undefined;
    throw new InvalidRequestError("The request body is empty; send a JSON object.", { code: "invalid_body" });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidRequestError(`The request body is not valid JSON: ${(err as Error).message}`, { code: "invalid_json" });
  }
  if (MAY_HAVE_FORBIDDEN_KEY.test(text)) {
    const found = findForbiddenKey(value);
    if (found) {
      const param = formatParamPath(found);
      throw new InvalidRequestError(`The request body contains the key '${String(found.at(-1))}' (at '${param}'), which is not accepted.`, {
        param,
        code: "invalid_body",
      });
    }
  }
  return value;
}

/** The path of the first `__proto__` key, or `constructor` key whose value has a `prototype`; iterative (deep bodies). */
function findForbiddenKey(root: unknown): PropertyKey[] | null {
  const stack: { value: unknown; path: PropertyKey[] }[] = [{ value: root, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, path } = item;
    if (value === null || typeof value !== "object") continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        const v: unknown = value[i];
        if (v !== null && typeof v === "object") stack.push({ value: v, path: [...path, i] });
      }
      continue;
    }
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    for (const key of keys) {
      const v = record[key];
      if (key === "__proto__") return [...path, key];
      if (key === "constructor" && v !== null && typeof v === "object" && Object.hasOwn(v, "prototype")) return [...path, key];
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const v = record[keys[i]!];
      if (v !== null && typeof v === "object") stack.push({ value: v, path: [...path, keys[i]!] });
    }
  }
  return null;
}
