import { isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Node, type ParsedNode, type YAMLError } from "yaml";
import { ConfigError } from "../core/errors.js";
import { copyConfigTree } from "./copyConfigTree.js";
import { findDuplicateJsonKey, positionOf, type TextPosition } from "./findDuplicateJsonKey.js";
import { formatKeyPath } from "./formatKeyPath.js";
import { locateJsonError } from "./locateJsonError.js";

/** `.yaml`/`.yml` files are YAML, everything else JSON. */
export function isYamlConfigPath(path: string): boolean {
  return /\.ya?ml$/i.test(path);
}

/**
 * Parses a config file's text (YAML for `.yaml`/`.yml`, JSON otherwise) into data whose mappings are
 * null-prototype objects holding only the file's own keys. Refuses, with a ConfigError naming the file:
 * syntax errors (with line and column); a key given twice in one mapping (with both places; JSON.parse
 * would silently keep the last); and `__proto__`, `constructor` or `prototype` at any depth (by key path).
 */
export function parseConfigText(path: string, text: string): unknown {
  return copyConfigTree(isYamlConfigPath(path) ? parseYaml(path, text) : parseJson(path, text), path);
}

function parseJson(path: string, text: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError("config", `cannot read ${path}: ${jsonSyntaxMessage(text, (err as Error).message)}`);
  }
  const dup = findDuplicateJsonKey(text);
  if (dup) throw duplicateKeyError(path, dup.path, dup.at, dup.first);
  return parsed;
}

/**
 * V8's JSON.parse message with the place as a line and column: "Expected double-quoted property name at line 5,
 * column 1" for "... in JSON at position 77". Where V8 names no position ("Unexpected token 'x', "{..." is not
 * valid JSON"), the place is found by reading the text again.
 */
function jsonSyntaxMessage(text: string, message: string): string {
  const stated = /\bat position (\d+)/.exec(message);
  const offset = stated ? Number(stated[1]) : (locateJsonError(text) ?? text.length);
  const what = message
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/\s*(?:in JSON )?at position \d+/, "")
    .replace(/, .* is not valid JSON$/s, "")
    .replace(/ of JSON input$/, " of the file");
  const { line, column } = positionOf(text, Math.min(offset, text.length));
  return `${what} at line ${line}, column ${column}`;
}

/** Keys that toJS would turn into the same property name (`1` and `"1"`, `chat` and `"chat"`) are duplicates. */
function sameKey(a: ParsedNode, b: ParsedNode): boolean {
  return a === b || (isScalar(a) && isScalar(b) && String(a.value) === String(b.value));
}

function parseYaml(path: string, text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: sameKey, lineCounter });
  const first = doc.errors[0];
  if (first?.code === "DUPLICATE_KEY") throw yamlDuplicateKeyError(path, doc.contents, first, lineCounter);
  if (first) throw new ConfigError("config", `cannot read ${path}: ${yamlMessage(first)}`);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError("config", `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The first line of a pretty YAML error: "Map keys must be unique at line 3, column 1". */
function yamlMessage(err: YAMLError): string {
  return (err.message.split("\n")[0] ?? "").replace(/:$/, "");
}

/** Finds the repeated key the parser reported (by its offset) to name its key path and the first occurrence. */
function yamlDuplicateKeyError(path: string, root: Node | null, err: YAMLError, lines: LineCounter): ConfigError {
  const offset = err.pos[0];
  const position = (o: number): TextPosition => {
    const { line, col } = lines.linePos(o);
    return { line, column: col };
  };
  let found: ConfigError | undefined;
  visit(root, {
    Pair(_, pair, ancestors) {
      const key = pair.key as ParsedNode | null;
      if (!key?.range || key.range[0] !== offset) return;
      const keyPath: (string | number)[] = [];
      const chain = [...ancestors, pair];
      chain.forEach((node, i) => {
        if (isPair(node)) keyPath.push(keyText(node.key));
        else if (isSeq(node)) keyPath.push(node.items.indexOf(chain[i + 1]));
      });
      const map = ancestors[ancestors.length - 1];
      const earlier = map && "items" in map ? (map.items as unknown[]).find((p) => isPair(p) && p !== pair && p.key && sameKey(p.key as ParsedNode, key)) : undefined;
      const firstKey = isPair(earlier) ? (earlier.key as ParsedNode | null) : null;
      found = duplicateKeyError(path, keyPath, position(offset), firstKey?.range ? position(firstKey.range[0]) : undefined);
      return visit.BREAK;
    },
  });
  return found ?? new ConfigError(`config (from ${path})`, `duplicate key at line ${position(offset).line}, column ${position(offset).column}`);
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function duplicateKeyError(path: string, keyPath: (string | number)[], at: TextPosition, first: TextPosition | undefined): ConfigError {
  const earlier = first ? ` (first at line ${first.line}, column ${first.column})` : "";
  return new ConfigError(`${formatKeyPath(keyPath)} (from ${path})`, `duplicate key at line ${at.line}, column ${at.column}${earlier}; only one of them could count`);
}
