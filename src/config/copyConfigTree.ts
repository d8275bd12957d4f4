import { ConfigError } from "../core/errors.js";
import { formatKeyPath } from "./formatKeyPath.js";

/**
 * Keys refused at any depth of a config: assigned to an ordinary object, `__proto__` replaces its prototype (a
 * file could then supply `host`, `insecureNoAuth`, ... as inherited values that no own-key check sees), and
 * `constructor`/`prototype` are the other routes to the same objects. No setting has these names.
 */
const FORBIDDEN_CONFIG_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Deeper than any real config; also keeps a hostile file from exhausting the stack. */
const MAX_DEPTH = 64;

/**
 * A deep copy of parsed config data in which every mapping is a null-prototype object holding only the original's
 * own keys, so nothing inherited can be read as a setting. Throws ConfigError naming the key path and `source`
 * for a forbidden key, a structure that contains itself (YAML aliases can build one) or one nested too deep.
 * Arrays are copied; objects other than plain ones (dates, buffers) are kept as they are for the schema to refuse.
 */
export function copyConfigTree(value: unknown, source: string): unknown {
  return copy(value, [], new Set(), source);
}

function copy(value: unknown, path: (string | number)[], ancestors: Set<object>, source: string): unknown {
  if (value === null || typeof value !== "object") return value;
  const isArray = Array.isArray(value);
  const proto: unknown = Object.getPrototypeOf(value);
  if (!isArray && proto !== Object.prototype && proto !== null) return value;
  const where = (p: (string | number)[]) => `${p.length > 0 ? formatKeyPath(p) : "config"} (from ${source})`;
  if (ancestors.has(value)) throw new ConfigError(where(path), "refers to itself (a YAML alias inside its own anchor)");
  if (path.length >= MAX_DEPTH) throw new ConfigError(where(path), `nests deeper than ${MAX_DEPTH} levels`);
  ancestors.add(value);
  let out: unknown;
  if (isArray) {
    out = Array.from(value as unknown[], (item, i) => copy(item, [...path, i], ancestors, source));
  } else {
    const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_CONFIG_KEYS.has(key)) {
        throw new ConfigError(where([...path, key]), "this key is not allowed (__proto__, constructor and prototype are refused at any depth)");
      }
      obj[key] = copy((value as Record<string, unknown>)[key], [...path, key], ancestors, source);
    }
    out = obj;
  }
  ancestors.delete(value);
  return out;
}
