import { describe, expect, it } from "vitest";
import {
  compileJsonSchema,
  jsonObjectMatcher,
  matchFormat,
  MAX_SCHEMA_BYTES,
  type JsonSchemaMatcher,
  type MatcherState,
} from "../../../src/backends/generation/JsonSchemaMatcher.js";
import { createRandom } from "../../../src/backends/onnx/createRandom.js";
import { InvalidRequestError } from "../../../src/core/errors.js";
import { validateJsonSchema } from "../../api/openapi/validateJsonSchema.js";

type Schema = Record<string, unknown>;

const compile = (schema: Schema) => compileJsonSchema(schema, "s", "onnxruntime");

/** How many code points of `text` the matcher accepts, and its state after them. */
function feed(m: JsonSchemaMatcher, text: string): { accepted: number; state: MatcherState } {
  let state = m.initial;
  let accepted = 0;
  for (const ch of text) {
    const next = m.accepts(state, ch);
    if (next === null) break;
    state = next;
    accepted++;
  }
  return { accepted, state };
}

function matches(m: JsonSchemaMatcher, text: string): boolean {
  const { accepted, state } = feed(m, text);
  return accepted === [...text].length && m.isComplete(state);
}

function refusal(schema: Schema): InvalidRequestError {
  try {
    compile(schema);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRequestError);
    return e as InvalidRequestError;
  }
  throw new Error("expected a refusal");
}

const WEATHER: Schema = {
  type: "object",
  properties: {
    city: { type: "string", enum: ["Oslo", "Lima", "São Paulo"] },
    days: { type: "integer" },
    unit: { type: ["string", "null"], maxLength: 3 },
    tags: { type: "array", items: { type: "string", minLength: 1, maxLength: 4 }, minItems: 1, maxItems: 3 },
  },
  required: ["city", "days"],
  additionalProperties: false,
};

describe("JsonSchemaMatcher", () => {
  it("accepts valid documents, completing exactly at their end", () => {
    const m = compile(WEATHER);
    for (const doc of [
      '{"city":"Oslo","days":3}',
      '{"days": -12, "city": "São Paulo", "unit": null}',
      '{\n  "city": "Lima",\n  "days": 0,\n  "tags": ["a", "bcd"]\n}',
      '{"city":"Oslo","days":123456789012345,"unit":"\\u00b0C"}',
    ]) {
      expect(matches(m, doc), doc).toBe(true);
      const { state } = feed(m, doc);
      expect(m.isDone(state)).toBe(true);
      // Every proper prefix is accepted and is not complete.
      const chars = [...doc];
      let s = m.initial;
      for (const ch of chars.slice(0, -1)) {
        s = m.accepts(s, ch)!;
        expect(s).not.toBeNull();
        expect(m.isComplete(s)).toBe(false);
      }
    }
  });

  it("refuses, at the first wrong character, what the schema rules out", () => {
    const m = compile(WEATHER);
    // ⟨ marks the first character refused.
    for (const marked of [
      '{"city":"Oslo"⟨}', // days is required
      '{"city":"Osl⟨"}', // not one of the enum
      '{"city":"Oslo","⟨city":"Lima"}', // a key at most once
      '{"city":"Oslo","days":1⟨.5}', // integer: no fraction
      '{"city":"Oslo","days":1⟨e3}', // nor exponent
      '{"city":"Oslo","days":123456789012345⟨6}', // 15 digits at most
      '{"city":"Oslo","days":0⟨1}',
      '{"city":"Oslo","days":1,"⟨other":1}', // additionalProperties false
      '{"city":"Oslo","days":1,"unit":"abc⟨d"}', // maxLength
      '{"city":"Oslo","days":1,"tags":[⟨]}', // minItems
      '{"city":"Oslo","days":1,"tags":["⟨"]}', // minLength
      '{"city":"Oslo","days":1,"tags":["a","b","c"⟨,"d"]}', // maxItems
      '{"city":"Oslo","days":1,⟨}', // no trailing comma
      '⟨ {"city":"Oslo","days":1}', // no whitespace before the root
      '{ ⟨ "city":"Oslo","days":1}', // one space at most
      '{\n    ⟨  "city":"Oslo","days":1}', // a newline and 4 indents at most
      '{\n ⟨\n"city":"Oslo","days":1}',
      '{"city":"Oslo","days":1}⟨ ', // nothing after the root
      '{"city":"Oslo","days":1,"unit":"\\ud⟨83d"}', // no surrogate escapes
      '{"city":"Oslo","days":1,"unit":"a⟨\nb"}', // no raw control characters
    ]) {
      const at = [...marked].indexOf("⟨");
      expect(feed(m, marked.replace("⟨", "")).accepted, marked).toBe(at);
    }
  });

  it("json_object: any object, values of every kind; numbers stay finite", () => {
    const m = jsonObjectMatcher();
    expect(matches(m, '{"a":[1,-2.5e10,{"b":null,"c":[true,false,"x"]}],"c":"\\u00e9\\n\\"","d":{}}')).toBe(true);
    expect(matches(m, "{}")).toBe(true);
    expect(feed(m, "[1]").accepted).toBe(0);
    expect(feed(m, '"x"').accepted).toBe(0);
    expect(feed(m, '{"a":1e100}').accepted).toBe(9); // exponents of 2 digits at most
    expect(matches(m, '{"a":1e99}')).toBe(true);
    expect(feed(m, '{"a":1,"a":2}').accepted).toBe(9); // a key at most once, in any object
    expect(feed(m, '{"a":tru}').accepted).toBe(8);
    expect(feed(m, '{"a":1.}').accepted).toBe(7);
  });

  it("a number at the root is complete while it may go on", () => {
    const m = compile({ type: "number" });
    const { state } = feed(m, "12.5");
    expect(m.isComplete(state)).toBe(true);
    expect(m.isDone(state)).toBe(false);
    expect(m.accepts(state, "7")).not.toBeNull();
    expect(m.accepts(state, " ")).toBeNull();
    expect(m.isComplete(feed(m, "12.").state)).toBe(false);
  });

  it("oneOf branches stay open until the text decides; $ref follows $defs, recursion included", () => {
    const m = compile({
      oneOf: [
        { type: "object", properties: { name: { const: "a" }, arguments: { type: "object" } }, required: ["name", "arguments"], additionalProperties: false },
        { type: "object", properties: { name: { const: "b" }, arguments: { $ref: "#/$defs/args" } }, required: ["name", "arguments"], additionalProperties: false },
      ],
      $defs: {
        args: { type: "object", properties: { n: { type: ["integer", "null"] }, next: { $ref: "#/definitions/args" } }, required: ["n"], additionalProperties: false },
      },
    });
    expect(matches(m, '{"name":"b","arguments":{"n":null,"next":{"n":2}}}')).toBe(true);
    expect(matches(m, '{"name":"a","arguments":{"anything":[1]}}')).toBe(true);
    expect(matches(m, '{"name":"b","arguments":{"n":"x"}}')).toBe(false);
    expect(matches(m, '{"name":"c","arguments":{}}')).toBe(false);
  });

  it("const and enum match JSON.stringify's text, of the declared type", () => {
    const m = compile({
      type: "object",
      properties: { v: { enum: [1, "one", { x: [true] }, null] }, k: { type: "string", enum: ["a", 1] } },
      additionalProperties: false,
    });
    for (const v of ["1", '"one"', '{"x":[true]}', "null"]) expect(matches(m, `{"v":${v}}`), v).toBe(true);
    expect(matches(m, '{"v":{"x": [true]}}')).toBe(false);
    expect(matches(m, '{"k":"a"}')).toBe(true);
    expect(matches(m, '{"k":1}')).toBe(false);
  });

  it("prefixItems, items false, min/maxProperties and free keys with a schema", () => {
    const pair = compile({ type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], items: false });
    expect(matches(pair, '["a",1]')).toBe(true);
    expect(matches(pair, '["a",1,2]')).toBe(false);
    expect(matches(pair, '[1,"a"]')).toBe(false);
    const dict = compile({ type: "object", additionalProperties: { type: "boolean" }, minProperties: 1, maxProperties: 2 });
    expect(matches(dict, "{}")).toBe(false);
    expect(matches(dict, '{"x":true,"y":false}')).toBe(true);
    expect(matches(dict, '{"x":true,"y":false,"z":true}')).toBe(false);
    expect(matches(dict, '{"x":1}')).toBe(false);
  });

  it("formats date, time and date-time follow RFC 3339", () => {
    const m = compile({
      type: "object",
      properties: { d: { type: "string", format: "date" }, t: { type: "string", format: "time" }, dt: { type: "string", format: "date-time" } },
    });
    expect(matches(m, '{"d":"2024-02-29","t":"23:59:59Z","dt":"2024-12-31T10:11:12.123+01:00"}')).toBe(true);
    for (const bad of ['{"d":"2024-13-01"}', '{"d":"2024-1-01"}', '{"t":"24:00:00Z"}', '{"t":"10:00:00"}', '{"dt":"2024-01-01 10:00:00Z"}', '{"d":"2024-01-32"}'])
      expect(matches(m, bad), bad).toBe(false);
    expect(matchFormat("date", "2024-0")).toEqual({ complete: false, viable: true });
    expect(matchFormat("date", "2024-00")).toEqual({ complete: false, viable: false });
  });

  it("refuses what it cannot enforce, naming the path; schema errors are 400s too", () => {
    expect(refusal({ type: "object", properties: { id: { type: "string", pattern: "x" } } }).param).toBe("s.properties.id.pattern");
    expect(refusal({ type: "number", minimum: 0 }).param).toBe("s.minimum");
    expect(refusal({ allOf: [] }).param).toBe("s.allOf");
    expect(refusal({ type: "string", format: "email" }).message).toMatch(/the format 'email' cannot be enforced by the onnxruntime engine/);
    expect(refusal({ $ref: "https://example.com/s.json" }).param).toBe("s.$ref");
    expect(refusal({ $ref: "#/$defs/missing" }).message).toMatch(/not defined/);
    expect(refusal({ type: "object", properties: { a: false } }).param).toBe("s.properties.a");
    expect(refusal({ oneOf: [{ type: "string" }], properties: {} }).param).toBe("s.properties");
    expect(refusal({ type: "strnig" }).code).toBe("invalid_schema");
    expect(refusal({ type: "object", properties: {}, required: ["x"], additionalProperties: false }).param).toBe("s.required");
    const big = { type: "object", properties: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`field_${i}`, { type: "string" }])) };
    expect(JSON.stringify(big).length).toBeGreaterThan(MAX_SCHEMA_BYTES);
    expect(refusal(big).code).toBe("schema_too_large");
    // Annotations are ignored.
    expect(() => compile({ title: "T", description: "d", type: "object", properties: { a: { type: "string", default: "x", examples: ["y"] } } })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Property-based: random valid instances of several schemas, written with random bounded whitespace.

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
// Characters of one UTF-16 unit: validateJsonSchema counts lengths in units, the matcher (as JSON Schema says) in
// code points.
const STRING_CHARS = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "é", "東", "\u0001"];

function randomString(r: Rand, min = 0, max = 6): string {
  return Array.from({ length: int(r, min, max) }, () => pick(r, STRING_CHARS)).join("");
}

function randomNumber(r: Rand, integer: boolean): number {
  const n = int(r, -1e6, 1e6);
  return integer ? n : pick(r, [n, n / 8, 1.5e-7, -3.25e-20, 0]);
}

/** A random instance of the schemas below (not a general generator). */
function instance(r: Rand, s: Schema, root: Schema, depth = 0): unknown {
  if (typeof s["$ref"] === "string") return instance(r, (root["$defs"] as Record<string, Schema>)[s["$ref"].split("/").pop()!]!, root, depth + 1);
  if (Array.isArray(s["anyOf"])) return instance(r, pick(r, s["anyOf"] as Schema[]), root, depth);
  if (Array.isArray(s["enum"])) return pick(r, s["enum"] as unknown[]);
  if ("const" in s) return s["const"];
  const type = Array.isArray(s["type"]) ? pick(r, s["type"] as string[]) : (s["type"] as string | undefined);
  switch (type) {
    case "null":
      return null;
    case "boolean":
      return r() < 0.5;
    case "integer":
      return randomNumber(r, true);
    case "number":
      return randomNumber(r, false);
    case "string":
      return randomString(r, (s["minLength"] as number | undefined) ?? 0, (s["maxLength"] as number | undefined) ?? 6);
    case "array": {
      const n = int(r, (s["minItems"] as number | undefined) ?? 0, (s["maxItems"] as number | undefined) ?? (depth > 2 ? 0 : 3));
      return Array.from({ length: n }, () => instance(r, (s["items"] as Schema | undefined) ?? {}, root, depth + 1));
    }
    case "object": {
      const properties = (s["properties"] ?? {}) as Record<string, Schema>;
      const required = (s["required"] ?? []) as string[];
      const out: Record<string, unknown> = {};
      const keys = Object.keys(properties).filter((k) => required.includes(k) || r() < 0.5);
      for (const k of keys.sort(() => r() - 0.5)) out[k] = instance(r, properties[k]!, root, depth + 1);
      if (s["additionalProperties"] !== false && depth < 3) {
        for (let i = int(r, 0, 2); i > 0; i--) out[randomString(r, 1, 4)] = instance(r, {}, root, depth + 1);
      }
      return out;
    }
    default:
      return instance(r, { type: pick(r, ["null", "boolean", "number", "string", ...(depth < 3 ? ["array", "object"] : [])]) }, root, depth + 1);
  }
}

/** JSON with random whitespace within the matcher's bounds: none, one space, or a newline and up to 4 indents. */
function write(r: Rand, value: unknown): string {
  const ws = () => pick(r, ["", "", " ", "\n", "\n  ", "\n\t\t\t\t"]);
  if (Array.isArray(value)) return value.length === 0 ? `[${ws()}]` : `[${ws()}${value.map((v) => write(r, v)).join(`${ws()},${ws()}`)}${ws()}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}${ws()}:${ws()}${write(r, v)}`);
    return entries.length === 0 ? `{${ws()}}` : `{${ws()}${entries.join(`${ws()},${ws()}`)}${ws()}}`;
  }
  return JSON.stringify(value);
}

const SCHEMAS: Record<string, Schema> = {
  weather: WEATHER,
  anything: { type: "object" },
  nested: {
    type: "object",
    properties: {
      items: { type: "array", items: { $ref: "#/$defs/item" }, maxItems: 4 },
      total: { type: "number" },
      note: { anyOf: [{ type: "string", maxLength: 5 }, { type: "null" }] },
    },
    required: ["items", "total"],
    additionalProperties: false,
    $defs: {
      item: {
        type: "object",
        properties: { id: { type: "integer" }, ok: { type: "boolean" }, kind: { enum: ["x", "y", 3] } },
        required: ["id"],
        additionalProperties: false,
      },
    },
  },
  call: {
    anyOf: [
      { type: "object", properties: { name: { const: "get_weather" }, arguments: WEATHER }, required: ["name", "arguments"], additionalProperties: false },
      {
        type: "object",
        properties: {
          name: { const: "get_time" },
          arguments: { type: "object", properties: { utc: { type: "boolean" } }, required: ["utc"], additionalProperties: false },
        },
        required: ["name", "arguments"],
        additionalProperties: false,
      },
    ],
  },
};

/** The schema as validateJsonSchema takes it (it does not know `$defs`; references resolve against the root). */
const validate = (schema: Schema, value: unknown) => {
  const { $defs: _defs, ...rest } = schema;
  return validateJsonSchema(schema, rest, value);
};

describe("JsonSchemaMatcher, property-based", () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`${name}: every prefix of random valid instances is accepted and the whole completes`, () => {
      const m = compile(schema);
      const r = createRandom(1);
      for (let i = 0; i < 200; i++) {
        const value = instance(r, schema, schema);
        expect(validate(schema, value), JSON.stringify(value)).toEqual([]);
        const text = write(r, value);
        const { accepted, state } = feed(m, text);
        expect(accepted, text).toBe([...text].length);
        expect(m.isComplete(state), text).toBe(true);
      }
    });

    it(`${name}: a mutated instance is accepted up to the change, and whatever completes validates`, () => {
      const m = compile(schema);
      const r = createRandom(2);
      const alphabet = [...'{}[]":, \n0123456789.-eatrufnl\\x'];
      for (let i = 0; i < 300; i++) {
        const chars = [...write(r, instance(r, schema, schema))];
        const at = int(r, 0, chars.length - 1);
        chars.splice(at, pick(r, [0, 1]), pick(r, alphabet));
        const text = chars.join("");
        const { accepted, state } = feed(m, text);
        expect(accepted, text).toBeGreaterThanOrEqual(at);
        if (accepted === chars.length && m.isComplete(state)) expect(validate(schema, JSON.parse(text)), text).toEqual([]);
      }
    });

    it(`${name}: random walks over the accepted characters never dead-end and end in valid documents`, () => {
      const m = compile(schema);
      const r = createRandom(3);
      const alphabet = [...'{}[]":, \n0123456789.-eE+truefalsnl\\u"abcé東OsloLimaSãPget_whrmdysiknxy'];
      const closing = [...'"}]0'];
      for (let i = 0; i < 100; i++) {
        let state = m.initial;
        let text = "";
        while (!m.isDone(state)) {
          if (m.isComplete(state) && r() < 0.3) break;
          const options = (text.length > 150 ? closing : alphabet).filter((ch) => m.accepts(state, ch) !== null);
          const next = options.length > 0 ? options : alphabet.filter((ch) => m.accepts(state, ch) !== null);
          // Escapes the alphabet cannot finish (a `\u` needs hex digits) are why this falls back to all of it.
          expect(next.length, `dead end after ${JSON.stringify(text)}`).toBeGreaterThan(0);
          const ch = pick(r, next);
          state = m.accepts(state, ch)!;
          text += ch;
          expect(text.length, text).toBeLessThan(2000);
        }
        expect(validate(schema, JSON.parse(text)), text).toEqual([]);
      }
    });
  }

  it("random strings are refused at their first character that no valid document has there", () => {
    const m = jsonObjectMatcher();
    const r = createRandom(4);
    const alphabet = [...'{}[]":, 01.-etrufnal'];
    for (let i = 0; i < 2000; i++) {
      const text = Array.from({ length: int(r, 1, 12) }, () => pick(r, alphabet)).join("");
      const { accepted, state } = feed(m, text);
      // Whatever completes is a JSON object; what was accepted before a refusal can still become one.
      if (accepted === text.length && m.isComplete(state)) expect(typeof JSON.parse(text)).toBe("object");
      else expect(JSON.parse(text.slice(0, accepted) + complete(m, state, r)), text).toBeTypeOf("object");
    }
  });
});

/** A random completion of `state` into a whole document (closing characters preferred). */
function complete(m: JsonSchemaMatcher, state: MatcherState, r: Rand): string {
  const closing = [...'"}]0el'];
  const any = [...'{}[]":,0123456789.-eatrufnl'];
  let text = "";
  while (!m.isComplete(state)) {
    const options = closing.filter((ch) => m.accepts(state, ch) !== null);
    const ch = pick(r, options.length > 0 ? options : any.filter((c) => m.accepts(state, c) !== null));
    state = m.accepts(state, ch)!;
    text += ch;
  }
  return text;
}

describe("JsonSchemaMatcher, generation form", () => {
  const schema = {
    type: "object",
    properties: { a: { type: "string" }, b: { type: "integer" }, c: { type: "boolean" } },
    required: ["a", "c"],
    additionalProperties: false,
  };
  const gen = compileJsonSchema(schema, "s", "test", { generation: true });
  const accepted = (text: string) => gen.acceptsText(gen.initial, text) !== null;

  it("writes no whitespace outside strings, keeps it inside them", () => {
    expect(accepted('{"a":"x y","c":true}')).toBe(true);
    expect(accepted('{ "a":"x"')).toBe(false);
    expect(accepted('{"a": "x"')).toBe(false);
    expect(accepted('{"a":"x"\n')).toBe(false);
  });

  it("takes a closed object's keys in declared order, skipping optional ones only", () => {
    expect(accepted('{"a":"x","b":1,"c":false}')).toBe(true);
    expect(accepted('{"a":"x","c":false}')).toBe(true);
    expect(accepted('{"c":false')).toBe(false); // the required "a" cannot be skipped
    expect(accepted('{"a":"x","c":false,"b"')).toBe(false); // "b" comes before "c"
    // The validating form takes any order and bounded whitespace.
    const any = compileJsonSchema(schema, "s", "test");
    expect(any.acceptsText(any.initial, '{ "c": false, "a": "x" }')).not.toBeNull();
  });
});
