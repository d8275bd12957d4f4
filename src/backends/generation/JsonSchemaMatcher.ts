import { InvalidRequestError } from "../../core/errors.js";
import { MAX_SCHEMA_BYTES, SCHEMA_ANNOTATIONS as ANNOTATIONS, SCHEMA_CONSTRAINTS as CONSTRAINTS } from "./jsonSchemaKeywords.js";
import type { ChatRequest } from "../../core/types.js";
import { forcedCallSchema, type ToolMode } from "./toolCalls.js";

/**
 * Constrained decoding without a grammar engine: an incremental matcher over the characters of a JSON document, for
 * the JSON Schema subset that node-llama-cpp's grammars enforce (jsonSchemaGrammar.ts): `type` (one or a list),
 * `properties`, `required`, `additionalProperties` (false, true or a schema), `items`, `prefixItems`,
 * `minItems`/`maxItems`, `minProperties`/`maxProperties`, `minLength`/`maxLength`, `enum`, `const`, `oneOf`/`anyOf`,
 * `format` date, time and date-time, and `$ref` to `#/$defs/...` (or `#/definitions/...`). Anything else that
 * constrains is refused with a 400 naming its path; annotations (`title`, `description`, ...) are ignored.
 *
 * Every prefix the matcher accepts can be completed into a document that validates (schemas that cannot be satisfied
 * at all aside, e.g. `maxProperties` below the number of required properties), and it accepts no more than that:
 *
 * - Numbers stay finite and safe: at most 15 integer digits, 15 fraction digits and a 2-digit exponent; `integer`
 *   has neither fraction nor exponent.
 * - Whitespace is bounded: between two tokens at most one space, or a newline and up to 4 spaces or tabs, and none
 *   before or after the root value, so a model cannot loop on whitespace.
 * - Objects with `additionalProperties: false` take only their declared keys, each at most once, and close only once
 *   the required ones are in; any object takes a key at most once.
 * - `oneOf` is generated as `anyOf` (as llama.cpp does): the value matches at least one branch.
 * - `const` and `enum` values must be written as `JSON.stringify` writes them.
 * - String lengths count code points; `\u` escapes of surrogates are refused (a pair would count as two).
 *
 * The state is a list of alternatives (more than one while a `oneOf` or `enum` has not yet been decided), each a
 * persistent stack of immutable frames, so `accepts` never mutates and a state is cloned by keeping a reference:
 * a token-mask walk explores thousands of continuations from one state.
 */

/** A compiled schema node. */
export type SchemaNode =
  | { kind: "any" }
  | { kind: "union"; options: SchemaNode[] }
  | { kind: "literal"; text: string }
  | { kind: "string"; minLength: number; maxLength: number; format: StringFormat | null }
  | { kind: "number"; integer: boolean }
  | ObjectNode
  | ArrayNode
  | { kind: "ref"; name: string; defs: Map<string, SchemaNode> };

interface ObjectNode {
  kind: "object";
  properties: Map<string, SchemaNode>;
  required: readonly string[];
  /** null: no other keys (`additionalProperties: false`). */
  additional: SchemaNode | null;
  minProperties: number;
  maxProperties: number;
  /** Declared keys only in declared order (see MatcherOptions.generation). */
  ordered: boolean;
}

interface ArrayNode {
  kind: "array";
  prefix: SchemaNode[];
  /** null: no items past `prefix`. */
  items: SchemaNode | null;
  minItems: number;
  maxItems: number;
}

type StringFormat = "date" | "time" | "date-time";

/** Where in the document an alternative is: a persistent stack; null once the root value is complete. */
interface Stack {
  readonly top: Frame;
  readonly below: Stack | null;
}

type Frame = StartFrame | LiteralFrame | StringFrame | KeyFrame | NumberFrame | ObjectFrame | ArrayFrame;

interface StartFrame {
  readonly kind: "start";
  readonly node: SchemaNode;
}

interface LiteralFrame {
  readonly kind: "literal";
  readonly text: string;
  readonly pos: number;
}

interface StringFrame {
  readonly kind: "string";
  readonly node: { minLength: number; maxLength: number; format: StringFormat | null };
  /** Characters so far (code points, an escape counting as one). */
  readonly length: number;
  /** 0: plain; 1: after `\`; 2–5: reading the 4 hex digits of `\u`. */
  readonly escape: number;
  /** The raw text so far: kept for keys (to know which one it is) and formats (to check the pattern). */
  readonly text: string | null;
  /** The first hex digit of a `\u` escape was D (a second of 8–F would make a surrogate). */
  readonly surrogate: boolean;
  /** A key: checked against the object's keys at the closing quote, to refuse one already used. */
  readonly key: boolean;
}

/** A key of an object that takes only its declared keys: a prefix of one of the unused keys' JSON texts. */
interface KeyFrame {
  readonly kind: "key";
  readonly candidates: readonly string[];
  readonly text: string;
}

interface NumberFrame {
  readonly kind: "number";
  readonly integer: boolean;
  readonly phase: "sign" | "zero" | "int" | "dot" | "frac" | "exp" | "expSign" | "expDigits";
  /** Digits in the current part. */
  readonly digits: number;
}

/** Keys used so far, newest first. */
interface KeyList {
  readonly key: string;
  readonly next: KeyList | null;
}

interface ObjectFrame {
  readonly kind: "object";
  readonly node: ObjectNode;
  /** open: after `{`; comma: after `,`; colon: after a key; value: after `:`; next: after a value. */
  readonly phase: "open" | "comma" | "colon" | "value" | "next";
  readonly used: KeyList | null;
  readonly count: number;
  /** The schema of the value after the key just read (phase colon / value). */
  readonly pending: SchemaNode | null;
  readonly ws: number;
}

interface ArrayFrame {
  readonly kind: "array";
  readonly node: ArrayNode;
  /** open: after `[`; comma: after `,`; next: after an item. */
  readonly phase: "open" | "comma" | "next";
  readonly count: number;
  readonly ws: number;
}

/** The matcher's state: its alternatives (a null stack is a complete root value). Immutable. */
export type MatcherState = readonly (Stack | null)[];

const MAX_INT_DIGITS = 15;
const MAX_FRACTION_DIGITS = 15;
const MAX_EXPONENT_DIGITS = 2;
const MAX_INDENT = 4;
/** References followed in a row without consuming a character (a `$ref` cycle is refused past this). */
const MAX_REF_CHAIN = 32;

const ANY: SchemaNode = { kind: "any" };
const ANY_OBJECT: ObjectNode = { kind: "object", properties: new Map(), required: [], additional: ANY, minProperties: 0, maxProperties: Infinity, ordered: false };
const ANY_ARRAY: ArrayNode = { kind: "array", prefix: [], items: ANY, minItems: 0, maxItems: Infinity };
const ANY_STRING = { kind: "string", minLength: 0, maxLength: Infinity, format: null } as const;
const NUMBER: SchemaNode = { kind: "number", integer: false };
const INTEGER: SchemaNode = { kind: "number", integer: true };
const BOOLEAN: SchemaNode = {
  kind: "union",
  options: [
    { kind: "literal", text: "true" },
    { kind: "literal", text: "false" },
  ],
};
const NULL: SchemaNode = { kind: "literal", text: "null" };

function push(frame: Frame, below: Stack | null): Stack {
  return { top: frame, below };
}

/** The stack once its top value is complete: the frame below (already past that value), or null at the root. */
function pop(stack: Stack): Stack | null {
  return stack.below;
}

function isWs(ch: string): boolean {
  return ch === " " || ch === "\n" || ch === "\t" || ch === "\r";
}

/** The whitespace counter after `ch` (0 none yet, 1 one space, 2 + k a newline and k indents), or -1 if refused. */
function nextWs(ws: number, ch: string): number {
  if (ws === 0) return ch === " " ? 1 : ch === "\n" ? 2 : -1;
  if (ws >= 2 && ws < 2 + MAX_INDENT && (ch === " " || ch === "\t")) return ws + 1;
  return -1;
}

function isDigit(ch: string): boolean {
  return ch >= "0" && ch <= "9" && ch.length === 1;
}

function isHex(ch: string): boolean {
  return ch.length === 1 && ((ch >= "0" && ch <= "9") || (ch >= "a" && ch <= "f") || (ch >= "A" && ch <= "F"));
}

/**
 * `generation`: the form the engines generate, so the same weights give the same document on every engine (llama.cpp's
 * grammars and llguidance write it this way): no whitespace outside strings, and the declared keys of a closed object
 * in declared order (an optional one may be skipped, a required one may not). Without it the matcher accepts any
 * valid document with bounded whitespace and keys in any order (what a validator of given text needs).
 */
export interface MatcherOptions {
  generation?: boolean;
}

export class JsonSchemaMatcher {
  /** The state before any character. */
  readonly initial: MatcherState;

  constructor(
    readonly root: SchemaNode,
    private readonly compact = false,
  ) {
    this.initial = [push({ kind: "start", node: root }, null)];
  }

  /** The state after `ch` (one code point), or null when no valid document continues this way. */
  accepts(state: MatcherState, ch: string): MatcherState | null {
    if (this.compact && isWs(ch) && !state.some((alt) => alt !== null && alt.top.kind === "string")) return null;
    if (state.length === 1) {
      const only = state[0]!;
      if (only === null) return null;
      const out: (Stack | null)[] = [];
      step(only, ch, out);
      if (out.length === 0) return null;
      // A character that leaves the state as it was (most characters of a string) allocates nothing.
      if (out.length === 1 && out[0] === only) return state;
      return out;
    }
    const out: (Stack | null)[] = [];
    for (const alt of state) if (alt !== null) step(alt, ch, out);
    return out.length === 0 ? null : out;
  }

  /** The state after every code point of `text`, or null. */
  acceptsText(state: MatcherState, text: string): MatcherState | null {
    let s: MatcherState | null = state;
    for (const ch of text) {
      s = this.accepts(s, ch);
      if (s === null) return null;
    }
    return s;
  }

  /** Whether the text so far is a whole valid document (it may still go on, e.g. a number at the root). */
  isComplete(state: MatcherState): boolean {
    return state.some((alt) => alt === null || (alt.below === null && alt.top.kind === "number" && numberComplete(alt.top)));
  }

  /** Whether the document is complete and nothing may follow. */
  isDone(state: MatcherState): boolean {
    return state.every((alt) => alt === null);
  }
}

function numberComplete(f: NumberFrame): boolean {
  return f.phase === "zero" || f.phase === "int" || f.phase === "frac" || f.phase === "expDigits";
}

/** Pushes onto `out` every stack that `stack` becomes after `ch`. */
function step(stack: Stack, ch: string, out: (Stack | null)[]): void {
  const f = stack.top;
  switch (f.kind) {
    case "start":
      startValue(f.node, ch, stack.below, out, 0);
      return;
    case "literal":
      if (f.text[f.pos] !== ch) return;
      out.push(f.pos + 1 === f.text.length ? pop(stack) : push({ ...f, pos: f.pos + 1 }, stack.below));
      return;
    case "string":
      stepString(stack, f, ch, out);
      return;
    case "key": {
      const text = f.text + ch;
      const candidates = f.candidates.filter((c) => c.startsWith(text));
      if (candidates.length === 0) return;
      if (candidates.includes(text)) out.push(keyDone(stack.below!, JSON.parse(text) as string));
      else out.push(push({ kind: "key", candidates, text }, stack.below));
      return;
    }
    case "number":
      stepNumber(stack, f, ch, out);
      return;
    case "object":
      stepObject(stack, f, ch, out);
      return;
    case "array":
      stepArray(stack, f, ch, out);
      return;
  }
}

/** The first character of a value of schema `node`, whose container (already past this value) is `below`. */
function startValue(node: SchemaNode, ch: string, below: Stack | null, out: (Stack | null)[], refs: number): void {
  switch (node.kind) {
    case "ref": {
      if (refs >= MAX_REF_CHAIN) return;
      const target = node.defs.get(node.name);
      if (target) startValue(target, ch, below, out, refs + 1);
      return;
    }
    case "union":
      for (const option of node.options) startValue(option, ch, below, out, refs);
      return;
    case "any":
      if (ch === "{") startValue(ANY_OBJECT, ch, below, out, refs);
      else if (ch === "[") startValue(ANY_ARRAY, ch, below, out, refs);
      else if (ch === '"') startValue(ANY_STRING, ch, below, out, refs);
      else if (ch === "-" || isDigit(ch)) startValue(NUMBER, ch, below, out, refs);
      else startValue(ch === "n" ? NULL : BOOLEAN, ch, below, out, refs);
      return;
    case "literal":
      if (node.text[0] !== ch) return;
      out.push(node.text.length === 1 ? below : push({ kind: "literal", text: node.text, pos: 1 }, below));
      return;
    case "string":
      if (ch === '"') out.push(push(newString(node, false), below));
      return;
    case "number":
      if (ch === "-") out.push(push({ kind: "number", integer: node.integer, phase: "sign", digits: 0 }, below));
      else if (ch === "0") out.push(push({ kind: "number", integer: node.integer, phase: "zero", digits: 1 }, below));
      else if (isDigit(ch)) out.push(push({ kind: "number", integer: node.integer, phase: "int", digits: 1 }, below));
      return;
    case "object":
      if (ch === "{") out.push(push({ kind: "object", node, phase: "open", used: null, count: 0, pending: null, ws: 0 }, below));
      return;
    case "array":
      if (ch === "[") out.push(push({ kind: "array", node, phase: "open", count: 0, ws: 0 }, below));
      return;
  }
}

function newString(node: StringFrame["node"], key: boolean): StringFrame {
  const keepText = key || node.format !== null;
  return { kind: "string", node, length: 0, escape: 0, surrogate: false, text: keepText ? "" : null, key };
}

function stepString(stack: Stack, f: StringFrame, ch: string, out: (Stack | null)[]): void {
  const { node } = f;
  if (f.escape === 0) {
    if (ch === '"') {
      if (f.length < node.minLength) return;
      if (node.format !== null && !matchFormat(node.format, f.text!).complete) return;
      if (f.key) {
        const name = JSON.parse(`"${f.text!}"`) as string;
        const below = stack.below!;
        if (hasKey((below.top as ObjectFrame).used, name)) return;
        out.push(keyDone(below, name));
        return;
      }
      out.push(pop(stack));
      return;
    }
    if (ch === "\\") {
      if (node.format !== null || f.length >= node.maxLength) return;
      out.push(push({ ...f, escape: 1, text: f.text === null ? null : f.text + ch }, stack.below));
      return;
    }
    if (ch.codePointAt(0)! < 0x20 || f.length >= node.maxLength) return;
    if (node.format !== null && !matchFormat(node.format, f.text! + ch).viable) return;
    // An unbounded string that keeps no text is the same state after any plain character: nothing is allocated.
    if (f.text === null && node.minLength === 0 && node.maxLength === Infinity) {
      out.push(stack);
      return;
    }
    // The hot path of keys and bounded strings: an object literal of a fixed shape, no spread.
    const next: StringFrame = { kind: "string", node, length: f.length + 1, escape: 0, surrogate: false, text: f.text === null ? null : f.text + ch, key: f.key };
    out.push({ top: next, below: stack.below });
    return;
  }
  const text = f.text === null ? null : f.text + ch;
  if (f.escape === 1) {
    if (ch === "u") out.push(push({ ...f, escape: 2, text }, stack.below));
    else if (ch.length === 1 && '"\\/bfnrt'.includes(ch)) out.push(push({ ...f, escape: 0, length: f.length + 1, text }, stack.below));
    return;
  }
  if (!isHex(ch)) return;
  // No surrogates (\uD800–\uDFFF): a pair would count as two characters.
  if (f.escape === 2) out.push(push({ ...f, escape: 3, surrogate: ch === "d" || ch === "D", text }, stack.below));
  else if (f.escape === 3 && f.surrogate && /[89a-fA-F]/.test(ch)) return;
  else if (f.escape === 5) out.push(push({ ...f, escape: 0, surrogate: false, length: f.length + 1, text }, stack.below));
  else out.push(push({ ...f, escape: f.escape + 1, text }, stack.below));
}

function hasKey(list: KeyList | null, name: string): boolean {
  for (let k = list; k !== null; k = k.next) if (k.key === name) return true;
  return false;
}

/** The object below a key that just ended: now expecting `:`, the key recorded. */
function keyDone(below: Stack, name: string): Stack {
  const obj = below.top as ObjectFrame;
  const pending = obj.node.properties.get(name) ?? obj.node.additional!;
  return push({ ...obj, phase: "colon", used: { key: name, next: obj.used }, pending, ws: 0 }, below.below);
}

function stepNumber(stack: Stack, f: NumberFrame, ch: string, out: (Stack | null)[]): void {
  const digit = isDigit(ch);
  const next = (phase: NumberFrame["phase"], digits: number) => out.push(push({ ...f, phase, digits }, stack.below));
  switch (f.phase) {
    case "sign":
      if (ch === "0") next("zero", 1);
      else if (digit) next("int", 1);
      return;
    case "zero":
    case "int":
      if (digit && f.phase === "int" && f.digits < MAX_INT_DIGITS) return void next("int", f.digits + 1);
      if (!f.integer && ch === ".") return void next("dot", 0);
      if (!f.integer && (ch === "e" || ch === "E")) return void next("exp", 0);
      break;
    case "dot":
      if (digit) next("frac", 1);
      return;
    case "frac":
      if (digit && f.digits < MAX_FRACTION_DIGITS) return void next("frac", f.digits + 1);
      if (ch === "e" || ch === "E") return void next("exp", 0);
      break;
    case "exp":
      if (ch === "+" || ch === "-") next("expSign", 0);
      else if (digit) next("expDigits", 1);
      return;
    case "expSign":
      if (digit) next("expDigits", 1);
      return;
    case "expDigits":
      if (digit && f.digits < MAX_EXPONENT_DIGITS) return void next("expDigits", f.digits + 1);
      break;
  }
  // The character after a complete number belongs to the container.
  if (digit || !numberComplete(f)) return;
  const below = pop(stack);
  if (below !== null) step(below, ch, out);
}

function canClose(f: ObjectFrame): boolean {
  if (f.count < f.node.minProperties) return false;
  for (const r of f.node.required) if (!hasKey(f.used, r)) return false;
  return true;
}

/**
 * The JSON texts of the keys that may come next, when only declared keys are allowed; null when any key is.
 * Declared keys come in their declared order, an optional one may be skipped, a required one may not: the order
 * llama.cpp's grammars and llguidance generate, so the same weights give the same object on every engine.
 */
function keyCandidates(f: ObjectFrame): string[] | null {
  if (f.node.additional !== null) return null;
  const out: string[] = [];
  if (!f.node.ordered) {
    for (const name of f.node.properties.keys()) if (!hasKey(f.used, name)) out.push(JSON.stringify(name));
    return out;
  }
  const names = [...f.node.properties.keys()];
  for (let i = f.used === null ? 0 : names.indexOf(f.used.key) + 1; i < names.length; i++) {
    out.push(JSON.stringify(names[i]));
    if (f.node.required.includes(names[i]!)) break;
  }
  return out;
}

function canAddKey(f: ObjectFrame): boolean {
  if (f.count >= f.node.maxProperties) return false;
  const candidates = keyCandidates(f);
  return candidates === null || candidates.length > 0;
}

function stepObject(stack: Stack, f: ObjectFrame, ch: string, out: (Stack | null)[]): void {
  if (isWs(ch)) {
    const ws = nextWs(f.ws, ch);
    if (ws >= 0) out.push(push({ ...f, ws }, stack.below));
    return;
  }
  switch (f.phase) {
    case "open":
    case "comma":
      if (ch === "}" && f.phase === "open") {
        if (canClose(f)) out.push(pop(stack));
        return;
      }
      if (ch !== '"' || !canAddKey(f)) return;
      {
        const candidates = keyCandidates(f);
        const self = push(f, stack.below);
        out.push(push(candidates === null ? newString(ANY_STRING, true) : { kind: "key", candidates, text: '"' }, self));
      }
      return;
    case "colon":
      if (ch === ":") out.push(push({ ...f, phase: "value", ws: 0 }, stack.below));
      return;
    case "value":
      startValue(f.pending!, ch, push({ ...f, phase: "next", count: f.count + 1, pending: null, ws: 0 }, stack.below), out, 0);
      return;
    case "next":
      if (ch === ",") {
        if (canAddKey(f)) out.push(push({ ...f, phase: "comma", ws: 0 }, stack.below));
      } else if (ch === "}" && canClose(f)) out.push(pop(stack));
      return;
  }
}

function itemSchema(node: ArrayNode, index: number): SchemaNode | null {
  return index < node.prefix.length ? node.prefix[index]! : node.items;
}

function canAddItem(f: ArrayFrame): boolean {
  return f.count < f.node.maxItems && itemSchema(f.node, f.count) !== null;
}

function stepArray(stack: Stack, f: ArrayFrame, ch: string, out: (Stack | null)[]): void {
  if (isWs(ch)) {
    const ws = nextWs(f.ws, ch);
    if (ws >= 0) out.push(push({ ...f, ws }, stack.below));
    return;
  }
  if (ch === "]" && f.phase !== "comma") {
    if (f.count >= f.node.minItems) out.push(pop(stack));
    return;
  }
  if (f.phase === "next") {
    if (ch === "," && canAddItem(f)) out.push(push({ ...f, phase: "comma", ws: 0 }, stack.below));
    return;
  }
  if (!canAddItem(f)) return;
  startValue(itemSchema(f.node, f.count)!, ch, push({ ...f, phase: "next", count: f.count + 1, ws: 0 }, stack.below), out, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Formats: RFC 3339 full-date, full-time and date-time, checked as the string grows.

type Parser = (s: string, i: number) => { ends: number[]; partial: boolean };

const cls =
  (chars: string): Parser =>
  (s, i) =>
    i >= s.length ? { ends: [], partial: true } : chars.includes(s[i]!) ? { ends: [i + 1], partial: false } : { ends: [], partial: false };

const seq =
  (...parts: Parser[]): Parser =>
  (s, i) => {
    let positions = [i];
    let partial = false;
    for (const p of parts) {
      const next: number[] = [];
      for (const at of positions) {
        const r = p(s, at);
        next.push(...r.ends);
        partial ||= r.partial;
      }
      positions = next;
      if (positions.length === 0) break;
    }
    return { ends: positions, partial };
  };

const alt =
  (...options: Parser[]): Parser =>
  (s, i) => {
    const ends: number[] = [];
    let partial = false;
    for (const o of options) {
      const r = o(s, i);
      ends.push(...r.ends);
      partial ||= r.partial;
    }
    return { ends, partial };
  };

const opt = (p: Parser): Parser => alt(seq(), p);
const D = "0123456789";
const lit = (text: string) => seq(...[...text].map((c) => cls(c)));
const upTo = (p: Parser, n: number): Parser => (n === 0 ? seq() : opt(seq(p, upTo(p, n - 1))));

const FULL_DATE = seq(
  cls(D),
  cls(D),
  cls(D),
  cls(D),
  lit("-"),
  alt(seq(cls("0"), cls("123456789")), seq(cls("1"), cls("012"))),
  lit("-"),
  alt(seq(cls("0"), cls("123456789")), seq(cls("12"), cls(D)), seq(cls("3"), cls("01"))),
);
const HOUR = alt(seq(cls("01"), cls(D)), seq(cls("2"), cls("0123")));
const MINUTE = seq(cls("012345"), cls(D));
const FULL_TIME = seq(HOUR, lit(":"), MINUTE, lit(":"), MINUTE, opt(seq(lit("."), cls(D), upTo(cls(D), 8))), alt(cls("Zz"), seq(cls("+-"), HOUR, lit(":"), MINUTE)));
const FORMATS: Record<StringFormat, Parser> = { date: FULL_DATE, time: FULL_TIME, "date-time": seq(FULL_DATE, cls("Tt"), FULL_TIME) };

/** Whether `text` is a whole value of the format, and whether it can still become one. */
export function matchFormat(format: StringFormat, text: string): { complete: boolean; viable: boolean } {
  const r = FORMATS[format](text, 0);
  const complete = r.ends.includes(text.length);
  return { complete, viable: complete || r.partial };
}

// ---------------------------------------------------------------------------------------------------------------
// Compiling a schema.

const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
const OBJECT_KEYWORDS = ["properties", "required", "additionalProperties", "minProperties", "maxProperties"];
const ARRAY_KEYWORDS = ["items", "prefixItems", "minItems", "maxItems"];
const STRING_KEYWORDS = ["minLength", "maxLength", "format"];
export { MAX_SCHEMA_BYTES };

type Json = Record<string, unknown>;

/**
 * Compiles a JSON Schema, or throws a 400 naming the first keyword the matcher cannot enforce (`param` is the
 * schema's path in the request; `engine` is named in the message).
 */
export function compileJsonSchema(schema: Json, param: string, engine: string, options: MatcherOptions = {}): JsonSchemaMatcher {
  if (JSON.stringify(schema).length > MAX_SCHEMA_BYTES) {
    throw new InvalidRequestError(`'${param}' is larger than ${MAX_SCHEMA_BYTES / 1024} KiB, the most this server compiles for constrained decoding.`, {
      param,
      code: "schema_too_large",
    });
  }
  const defs = new Map<string, SchemaNode>();
  const compiler = new Compiler(engine, defs, options.generation === true);
  for (const key of ["$defs", "definitions"]) {
    const table = schema[key];
    if (table === undefined) continue;
    if (table === null || typeof table !== "object" || Array.isArray(table)) throw invalid(`${param}.${key}`, "must be an object of schemas");
    for (const [name, sub] of Object.entries(table)) compiler.pendingDefs.push([name, sub, `${param}.${key}.${name}`]);
  }
  const root = compiler.compile(schema, param);
  while (compiler.pendingDefs.length > 0) {
    const [name, sub, path] = compiler.pendingDefs.shift()!;
    if (!defs.has(name)) defs.set(name, compiler.compile(sub, path));
  }
  for (const name of compiler.referenced) if (!defs.has(name)) throw invalid(compiler.refPaths.get(name)!, `refers to '#/$defs/${name}', which is not defined`);
  return new JsonSchemaMatcher(root, options.generation === true);
}

/** The matcher for json_object: any JSON object. */
export function jsonObjectMatcher(options: MatcherOptions = {}): JsonSchemaMatcher {
  return new JsonSchemaMatcher(ANY_OBJECT, options.generation === true);
}

function invalid(param: string, what: string): InvalidRequestError {
  return new InvalidRequestError(`'${param}' ${what}.`, { param, code: "invalid_schema" });
}

class Compiler {
  readonly pendingDefs: [string, unknown, string][] = [];
  readonly referenced = new Set<string>();
  readonly refPaths = new Map<string, string>();

  constructor(
    private readonly engine: string,
    private readonly defs: Map<string, SchemaNode>,
    private readonly ordered: boolean,
  ) {}

  private unsupported(param: string, what: string): InvalidRequestError {
    return new InvalidRequestError(`'${param}': ${what} cannot be enforced by the ${this.engine} engine's constrained decoding; remove it or use another engine.`, {
      param,
      code: "unsupported_schema",
    });
  }

  compile(node: unknown, path: string): SchemaNode {
    if (node === true) return ANY;
    if (node === false) throw this.unsupported(path, "the schema `false`");
    if (node === null || typeof node !== "object" || Array.isArray(node)) throw invalid(path, "must be a JSON Schema object");
    const s = node as Json;
    for (const key of Object.keys(s)) {
      if (!ANNOTATIONS.has(key) && !CONSTRAINTS.has(key)) throw this.unsupported(`${path}.${key}`, `the keyword '${key}'`);
    }
    const constraints = Object.keys(s).filter((k) => CONSTRAINTS.has(k) && k !== "$defs" && k !== "definitions");
    const types = this.types(s, path);

    if ("$ref" in s) {
      const ref = s["$ref"];
      if (typeof ref !== "string" || !/^#\/(\$defs|definitions)\/[^/]+$/.test(ref))
        throw this.unsupported(`${path}.$ref`, `the reference '${String(ref)}' (only #/$defs/...)`);
      this.alone(s, path, "$ref", constraints);
      const name = decodeURIComponent(ref.slice(ref.indexOf("/", 2) + 1))
        .replace(/~1/g, "/")
        .replace(/~0/g, "~");
      this.referenced.add(name);
      if (!this.refPaths.has(name)) this.refPaths.set(name, `${path}.$ref`);
      return { kind: "ref", name, defs: this.defs };
    }
    if ("const" in s || "enum" in s) {
      const key = "const" in s ? "const" : "enum";
      this.alone(s, path, key, constraints, ["type"]);
      const values = key === "const" ? [s["const"]] : s["enum"];
      if (!Array.isArray(values) || values.length === 0) throw invalid(`${path}.enum`, "must be a non-empty array");
      const texts = values.filter((v) => types === null || types.some((t) => jsonType(v, t))).map((v) => JSON.stringify(v));
      if (texts.length === 0) throw invalid(`${path}.${key}`, "has no value of the schema's type");
      return union(texts.map((text) => ({ kind: "literal", text })));
    }
    for (const key of ["oneOf", "anyOf"]) {
      if (!(key in s)) continue;
      this.alone(s, path, key, constraints, ["type"]);
      const branches = s[key];
      if (!Array.isArray(branches) || branches.length === 0) throw invalid(`${path}.${key}`, "must be a non-empty array of schemas");
      return union(
        branches.map((b, i) => {
          const at = `${path}.${key}[${i}]`;
          // A `type` beside the branches narrows each of them.
          if (types === null || b === true) return this.compile(types === null ? b : { type: types }, at);
          if (b === null || typeof b !== "object" || Array.isArray(b)) throw invalid(at, "must be a JSON Schema object");
          const own = this.types(b as Json, at);
          const both = own === null ? types : own.filter((t) => types.includes(t) || (t === "integer" && types.includes("number")));
          if (own !== null && both.length === 0) return union([]);
          return this.compile({ ...(b as Json), type: both }, at);
        }),
      );
    }
    if ("format" in s) {
      const format = s["format"];
      if (format !== "date" && format !== "time" && format !== "date-time") throw this.unsupported(`${path}.format`, `the format '${String(format)}'`);
    }
    const has = (keys: string[]) => keys.some((k) => k in s);
    // Without `type`, the keywords say which kind of value the schema is about (a value of another kind would also
    // validate, but generating one of this kind is enough); without either, any value.
    const kinds = types ?? (has(OBJECT_KEYWORDS) ? ["object"] : has(ARRAY_KEYWORDS) ? ["array"] : has(STRING_KEYWORDS) ? ["string"] : null);
    if (kinds === null) return ANY;
    return union(kinds.map((t) => this.ofType(t, s, path)));
  }

  /** Keywords beside `key` that the matcher cannot combine with it are refused. */
  private alone(s: Json, path: string, key: string, constraints: string[], allowed: string[] = []): void {
    const other = constraints.find((k) => k !== key && !allowed.includes(k));
    if (other !== undefined) throw this.unsupported(`${path}.${other}`, `'${other}' beside '${key}'`);
  }

  private types(s: Json, path: string): string[] | null {
    if (!("type" in s)) return null;
    const t = s["type"];
    const list = Array.isArray(t) ? t : [t];
    for (const x of list) if (typeof x !== "string" || !TYPES.has(x)) throw invalid(`${path}.type`, "must be a JSON Schema type or a list of them");
    return list as string[];
  }

  private count(s: Json, key: string, path: string, fallback: number): number {
    const v = s[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw invalid(`${path}.${key}`, "must be a non-negative integer");
    return v;
  }

  private ofType(type: string, s: Json, path: string): SchemaNode {
    switch (type) {
      case "null":
        return NULL;
      case "boolean":
        return BOOLEAN;
      case "integer":
        return INTEGER;
      case "number":
        return NUMBER;
      case "string":
        return {
          kind: "string",
          minLength: this.count(s, "minLength", path, 0),
          maxLength: this.count(s, "maxLength", path, Infinity),
          format: typeof s["format"] === "string" ? (s["format"] as StringFormat) : null,
        };
      case "array": {
        const prefix = s["prefixItems"];
        if (prefix !== undefined && !Array.isArray(prefix)) throw invalid(`${path}.prefixItems`, "must be an array of schemas");
        const items = s["items"];
        return {
          kind: "array",
          prefix: (prefix ?? []).map((p: unknown, i: number) => this.compile(p, `${path}.prefixItems[${i}]`)),
          items: items === false ? null : items === undefined ? ANY : this.compile(items, `${path}.items`),
          minItems: this.count(s, "minItems", path, 0),
          maxItems: this.count(s, "maxItems", path, Infinity),
        };
      }
      default: {
        const props = s["properties"] ?? {};
        if (props === null || typeof props !== "object" || Array.isArray(props)) throw invalid(`${path}.properties`, "must be an object of schemas");
        const properties = new Map(Object.entries(props as Json).map(([k, v]) => [k, this.compile(v, `${path}.properties.${k}`)]));
        const required = s["required"] ?? [];
        if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) throw invalid(`${path}.required`, "must be an array of property names");
        const additional = s["additionalProperties"];
        const node: ObjectNode = {
          kind: "object",
          properties,
          required: [...new Set(required as string[])],
          additional: additional === false ? null : additional === undefined ? ANY : this.compile(additional, `${path}.additionalProperties`),
          minProperties: this.count(s, "minProperties", path, 0),
          maxProperties: this.count(s, "maxProperties", path, Infinity),
          ordered: this.ordered,
        };
        if (node.additional === null) {
          const missing = node.required.find((r) => !properties.has(r));
          if (missing !== undefined) throw invalid(`${path}.required`, `names '${missing}', which additionalProperties false does not allow`);
        }
        return node;
      }
    }
  }
}

function union(options: SchemaNode[]): SchemaNode {
  return options.length === 1 ? options[0]! : { kind: "union", options };
}

function jsonType(v: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "string":
      return typeof v === "string";
    case "array":
      return Array.isArray(v);
    default:
      return v !== null && typeof v === "object" && !Array.isArray(v);
  }
}

/** Compiled matchers by schema text (an agent sends the same schema with every request). */
const cache = new Map<string, JsonSchemaMatcher>();
const MAX_CACHED = 64;

/** compileJsonSchema in its generation form, cached by the schema's text. A schema that is refused is not cached (it throws each time). */
export function cachedJsonSchemaMatcher(schema: Json, param: string, engine: string): JsonSchemaMatcher {
  const key = `${engine}\u0000${param}\u0000${JSON.stringify(schema)}`;
  let matcher = cache.get(key);
  if (matcher) {
    cache.delete(key);
    cache.set(key, matcher); // most recently used last
    return matcher;
  }
  matcher = compileJsonSchema(schema, param, engine, { generation: true });
  cache.set(key, matcher);
  if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return matcher;
}

const JSON_OBJECT = jsonObjectMatcher({ generation: true });

/**
 * The matcher a chat answer must follow: one call's JSON for a forced tool call (see forcedCallSchema), the schema
 * of a json_schema response, any JSON object for json_object; null for free text. A schema it cannot enforce is a
 * 400 naming the keyword's path (under `tools` or `response_format.json_schema.schema`).
 */
export function requestMatcher(request: ChatRequest, mode: ToolMode, engine: string): JsonSchemaMatcher | null {
  if (mode === "forced") return cachedJsonSchemaMatcher(forcedCallSchema(request), "tools", engine);
  const format = request.responseFormat;
  if (format.type === "json_schema") return cachedJsonSchemaMatcher(format.schema, "response_format.json_schema.schema", engine);
  if (format.type === "json_object") return JSON_OBJECT;
  return null;
}
