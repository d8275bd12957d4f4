import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyReranker, pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

/**
 * One set of weights, three engines: the cross-encoder folder on the transformers sidecar (CrossEncoder.predict) and
 * its GGUF on node-llama-cpp and llama-server must rank alike and score alike. The daemon's relevance_score is the
 * probability (sigmoid of the one-label head's logit) on every engine: CrossEncoder and node-llama-cpp apply the
 * sigmoid themselves, llama-server answers the raw logit and the daemon applies it.
 */
const ENGINES = ["rr-hf", "rr-gguf", "rr-srv"] as const;
/** Largest score difference allowed between engines (f32 weights; llama.cpp's kernels round differently). */
const TOLERANCE = 2e-3;

let t: TestDaemon;
let ref: { query: string; documents: string[]; scores: number[]; logits: number[] };

const QUERIES = ["what is the capital of france", "which animal is a pet", "read a book about music", "the sun and the moon"];
const DOCUMENTS = [
  "paris is the capital of france",
  "berlin is the capital of germany",
  "cats and dogs are pets",
  "the sun is a star",
  "python is a programming language",
  "a song on the piano",
  "rome madrid berlin paris",
  "fish live in water",
  "mars is a red planet",
  "bread and cheese",
  "zebra quokka 42!",
  "",
];

beforeAll(async () => {
  const [fixture, python, binary] = await Promise.all([ensureTinyReranker(), pythonExecutable(), llamaServerBinary()]);
  ref = JSON.parse(await readFile(fixture.reference, "utf8")) as typeof ref;
  t = await startTestDaemon(
    {
      models: [
        { id: "rr-hf", path: fixture.dir },
        { id: "rr-gguf", path: fixture.gguf, engine: "node-llama-cpp" },
        { id: "rr-srv", path: fixture.gguf, engine: "llama-server" },
      ],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python, TABAGENT_LLAMA_SERVER: binary },
  );
}, 300_000);
afterAll(async () => {
  await t?.close();
});

async function scores(model: string, query: string, documents: string[]): Promise<number[]> {
  const r = await postJson(`${t.url}/v1/rerank`, { model, query, documents, return_documents: false });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  const out = new Array<number>(documents.length);
  for (const x of (r.json as unknown as { results: { index: number; relevance_score: number }[] }).results) out[x.index] = x.relevance_score;
  return out;
}

describe("rerank conformance across engines (same weights)", () => {
  it("CrossEncoder's reference scores are the sigmoid of its logits (what the daemon answers everywhere)", () => {
    ref.logits.forEach((logit, i) => expect(1 / (1 + Math.exp(-logit))).toBeCloseTo(ref.scores[i]!, 6));
  });

  for (const query of QUERIES) {
    it(`same scores and order on every engine: "${query}"`, async () => {
      const docs = DOCUMENTS.filter((d) => d !== "" || query !== QUERIES[3]); // one query also ranks an empty document
      const all = await Promise.all(ENGINES.map((m) => scores(m, query, docs)));
      const [hf, ...others] = all;
      for (const [e, s] of others.entries()) {
        for (const [i, v] of s.entries()) expect(Math.abs(v - hf![i]!), `${ENGINES[e + 1]} documents[${i}]`).toBeLessThan(TOLERANCE);
        // The order agrees wherever the reference separates two documents by more than the tolerance.
        for (let i = 0; i < docs.length; i++) {
          for (let j = 0; j < docs.length; j++) {
            if (hf![i]! - hf![j]! > TOLERANCE) expect(s[i]!, `${ENGINES[e + 1]}: documents[${i}] over documents[${j}]`).toBeGreaterThan(s[j]!);
          }
        }
      }
      for (const s of all) for (const v of s) expect(v > 0 && v < 1).toBe(true);
    });
  }
});
