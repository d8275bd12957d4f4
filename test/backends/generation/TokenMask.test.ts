import { describe, expect, it } from "vitest";
import { compileJsonSchema, jsonObjectMatcher, type JsonSchemaMatcher, type MatcherState } from "../../../src/backends/generation/JsonSchemaMatcher.js";
import { TokenConstraint, TokenMask } from "../../../src/backends/generation/TokenMask.js";
import { syntheticVocabulary } from "../../../bench/tokenMaskBench.js";

// A hand-made vocabulary: id → text. 0 is EOS (a special token: no text), 1 a byte-level piece of "é" (decodes to
// U+FFFD), 2 another special token.
const VOCAB = [
  "",
  "\uFFFD",
  "",
  "{",
  "}",
  '"',
  '{"',
  '":',
  '",',
  "a",
  "ab",
  'a"',
  ":",
  ",",
  " ",
  "  ",
  "\n",
  "\n  ",
  "1",
  "12",
  "0",
  ".",
  "true",
  "tr",
  "null",
  "x",
  " {",
  "é",
  '"}',
  "[",
  "]",
  "-",
];
const EOS = 0;
const id = (text: string) => VOCAB.indexOf(text);
const texts = (ids: number[]) => ids.map((i) => VOCAB[i]!).sort();

function after(m: JsonSchemaMatcher, text: string): MatcherState {
  const s = m.acceptsText(m.initial, text);
  if (s === null) throw new Error(`refused: ${text}`);
  return s;
}

describe("TokenMask", () => {
  const mask = TokenMask.build(VOCAB, [EOS]);

  it("allows the tokens whose whole text the matcher accepts; EOS only once the document is complete", () => {
    const m = compileJsonSchema(
      { type: "object", properties: { a: { type: "integer" }, ab: { type: "boolean" } }, required: ["a"], additionalProperties: false },
      "s",
      "onnxruntime",
    );
    expect(texts(mask.allowed(m, m.initial))).toEqual(texts([id("{"), id('{"')]));
    expect(texts(mask.allowed(m, after(m, "{")))).toEqual(texts([id('"'), id(" "), id("\n"), id("\n  ")])); // `}` needs a first
    expect(texts(mask.allowed(m, after(m, '{"')))).toEqual(texts([id("a"), id("ab"), id('a"')]));
    expect(texts(mask.allowed(m, after(m, '{"a":')))).toEqual(texts([id(" "), id("\n"), id("\n  "), id("1"), id("12"), id("0"), id("-")]));
    expect(texts(mask.allowed(m, after(m, '{"a":1')))).toEqual(texts([id("}"), id(","), id(" "), id("\n"), id("\n  "), id("1"), id("12"), id("0")]));
    expect(mask.allowed(m, after(m, '{"a":1}'))).toEqual([EOS]); // only the end
    const complete = compileJsonSchema({ type: "integer" }, "s", "onnxruntime");
    expect(mask.allowed(complete, after(complete, "1"))).toContain(EOS);
    expect(mask.allowed(complete, after(complete, "-"))).not.toContain(EOS);
  });

  it("never allows special tokens or pieces of a multi-byte character, even inside a string", () => {
    const m = jsonObjectMatcher();
    const inString = mask.allowed(m, after(m, '{"'));
    expect(inString).not.toContain(1);
    expect(inString).not.toContain(2);
    expect(inString).toContain(id("é"));
    expect(inString).toContain(id(" {"));
    expect(inString).not.toContain(id("\n")); // raw control characters are not JSON
  });

  it("TokenConstraint masks logits, follows sampled tokens and ends once the document is done", () => {
    const m = compileJsonSchema({ type: "object", properties: { a: { type: "null" } }, required: ["a"], additionalProperties: false }, "s", "onnxruntime");
    const c = new TokenConstraint(m, mask);
    const logits = Float32Array.from(VOCAB, (_, i) => i / 10);
    const row = c.mask(logits)!;
    expect([...row.keys()].filter((i) => row[i] !== -Infinity)).toEqual([id("{"), id('{"')].sort((a, b) => a - b));
    expect(row[id('{"')]).toBeCloseTo(logits[id('{"')]!);
    for (const t of ['{"', "a", '":', "null"]) {
      expect(c.done).toBe(false);
      c.advance(id(t));
    }
    expect(c.done).toBe(false);
    c.advance(id("}"));
    expect(c.done).toBe(true);
    expect(c.mask(logits)).toBeNull();
  });

  it("ends (null mask) where no token continues the document", () => {
    // Only "z" would do, and the vocabulary has no z.
    const m = compileJsonSchema({ const: "z" }, "s", "onnxruntime");
    const c = new TokenConstraint(m, mask);
    c.advance(id('"'));
    expect(c.mask(Float32Array.from(VOCAB, () => 0))).toBeNull();
  });

  it("a 50k-token vocabulary: the mask at a few states takes milliseconds, not seconds", () => {
    const big = TokenMask.build(syntheticVocabulary(50_000, 1), [0]);
    const m = jsonObjectMatcher();
    for (const prefix of ["", "{", '{"na', '{"name": "Lorem ips', '{"n": 12', '{"n": [1, {"x": tr']) {
      const state = after(m, prefix);
      const start = performance.now();
      const allowed = big.allowed(m, state);
      const ms = performance.now() - start;
      expect(allowed.length, prefix).toBeGreaterThan(0);
      // Generous for a loaded CI machine; bench/tokenMaskBench.ts measures it properly.
      expect(ms, prefix).toBeLessThan(1000);
    }
  });
});
