// `npx tsx bench/tokenMaskBench.ts [MODEL_DIR]`: the cost of one constrained-decoding step (TokenMask.allowed: the
// tokens a JSON Schema matcher allows next) on a synthetic 50k-token vocabulary shaped like a byte-level BPE one, and
// on a model folder's own tokenizer when given (the tiny test LLM's by default, when its fixture exists). Prints
// milliseconds per step at states that cost differently: structure, inside keys, inside a free string (the most
// tokens pass), inside numbers.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileJsonSchema, jsonObjectMatcher, type JsonSchemaMatcher } from "../src/backends/generation/JsonSchemaMatcher.js";
import { TokenMask } from "../src/backends/generation/TokenMask.js";
import { createRandom } from "../src/backends/onnx/createRandom.js";

/**
 * A deterministic vocabulary of `size` token texts shaped like a byte-level BPE one: the printable ASCII bytes, then
 * words with and without a leading space, digit groups, JSON punctuation runs, whitespace runs, some non-ASCII words,
 * pieces of multi-byte characters (U+FFFD) and special tokens (""). Id 0 is a special token.
 */
export function syntheticVocabulary(size: number, seed: number): string[] {
  const r = createRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const letters = "etaoinshrdlcumwfgypbvkjxqz";
  const word = () => Array.from({ length: 2 + Math.floor(r() * 8) }, () => letters[Math.floor(Math.pow(r(), 1.5) * letters.length)]).join("");
  const punctuation = ['":', '",', '{"', '"}', "},", "],", ' "', '":"', '":[', "[{", "}]", "},{", ":{", '":{"', "()", ");", "...", "--", "=>", "//"];
  const out = new Set<string>([""]);
  for (let c = 0x21; c < 0x7f; c++) out.add(String.fromCharCode(c));
  for (const ws of [" ", "\n", "\t", "  ", "    ", "\n\n", "\n  ", "\n    ", "\n\t"]) out.add(ws);
  while (out.size < size) {
    const kind = r();
    let t: string;
    if (kind < 0.55) {
      t = word();
      if (r() < 0.5) t = ` ${t}`;
      if (r() < 0.15) t = t.replace(/[a-z]/, (ch) => ch.toUpperCase());
    } else if (kind < 0.65) t = (r() < 0.3 ? " " : "") + String(Math.floor(r() * 1000));
    else if (kind < 0.75) t = pick(punctuation) + (r() < 0.3 ? word() : "");
    else if (kind < 0.85) t = (r() < 0.5 ? " " : "") + Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick([..."éüñçøåßπλжкд東京日本語한국"])).join("");
    else if (kind < 0.95) t = word() + pick([".", ",", ":", '"', "'s", "ing", "ed"]);
    else t = r() < 0.8 ? "\uFFFD" + (r() < 0.5 ? word() : "") : "";
    out.add(t);
  }
  return [...out];
}

interface Case {
  name: string;
  matcher: JsonSchemaMatcher;
  prefix: string;
}

function measure(mask: TokenMask, cases: Case[], repeat: number): { name: string; ms: number; allowed: number }[] {
  return cases.map(({ name, matcher, prefix }) => {
    const state = matcher.acceptsText(matcher.initial, prefix);
    if (state === null) throw new Error(`the matcher refuses ${prefix}`);
    let allowed = 0;
    mask.allowed(matcher, state); // warm up
    const start = performance.now();
    for (let i = 0; i < repeat; i++) allowed = mask.allowed(matcher, state).length;
    return { name, ms: (performance.now() - start) / repeat, allowed };
  });
}

function report(title: string, texts: readonly string[]): void {
  const start = performance.now();
  const mask = TokenMask.build(texts, [0]);
  const buildMs = performance.now() - start;
  const schema = compileJsonSchema(
    {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" }, tags: { type: "array", items: { type: "string", enum: ["a", "b"] } } },
      required: ["name", "age"],
      additionalProperties: false,
    },
    "s",
    "bench",
  );
  const any = jsonObjectMatcher();
  const cases: Case[] = [
    { name: "json_object, start", matcher: any, prefix: "" },
    { name: "json_object, after {", matcher: any, prefix: "{" },
    { name: "json_object, in a key", matcher: any, prefix: '{"na' },
    { name: "json_object, in a string value", matcher: any, prefix: '{"name": "Lorem ips' },
    { name: "json_object, in a number", matcher: any, prefix: '{"n": 12' },
    { name: "schema, declared key", matcher: schema, prefix: '{"' },
    { name: "schema, in a string value", matcher: schema, prefix: '{"name": "Lor' },
    { name: "schema, after a value", matcher: schema, prefix: '{"name": "x"' },
    { name: "schema, enum item", matcher: schema, prefix: '{"name": "x", "age": 3, "tags": [' },
  ];
  const results = measure(mask, cases, 20);
  console.log(`${title}: ${texts.length} tokens, trie of ${mask.size} nodes built in ${buildMs.toFixed(1)} ms`);
  for (const r of results) console.log(`  ${r.name.padEnd(34)} ${r.ms.toFixed(3).padStart(8)} ms/step  ${String(r.allowed).padStart(6)} tokens allowed`);
  const mean = results.reduce((s, r) => s + r.ms, 0) / results.length;
  console.log(`  mean ${mean.toFixed(3)} ms/step, worst ${Math.max(...results.map((r) => r.ms)).toFixed(3)} ms/step`);
}

async function modelPieces(dir: string): Promise<string[]> {
  const { OnnxTokenizer } = await import("../src/backends/onnx/OnnxTokenizer.js");
  const tokenizer = await OnnxTokenizer.load(dir);
  return [...tokenizer.pieces()];
}

/** The tiny LLM's ONNX fixture folder, when the tests made one. */
function tinyFixture(): string | null {
  const root = fileURLToPath(new URL("../.fixtures/python/", import.meta.url));
  if (!existsSync(root)) return null;
  const found = readdirSync(root).find((d) => d.startsWith("tiny-llm-onnx-") && existsSync(join(root, d, "model", "tokenizer.json")));
  return found ? join(root, found, "model") : null;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2] ?? tinyFixture();
  if (dir) report(`tokenizer of ${dir}`, await modelPieces(dir));
  report("synthetic byte-level BPE vocabulary", syntheticVocabulary(50_000, 1));
  report("synthetic byte-level BPE vocabulary", syntheticVocabulary(150_000, 1));
}
