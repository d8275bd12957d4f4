import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyReranker, pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

interface Reference {
  query: string;
  documents: string[];
  scores: number[];
}
interface RerankAnswer {
  id: string;
  model: string;
  results: { index: number; relevance_score: number; document?: { text: string } }[];
  usage: { prompt_tokens: number; total_tokens: number };
}
interface ErrorAnswer {
  error: { message: string; param: string | null; code: string | null };
}

// The same weights on each engine that reranks: the sidecar's CrossEncoder, node-llama-cpp, llama-server.
const ENGINES = [
  ["rr-hf", "transformers"],
  ["rr-gguf", "node-llama-cpp"],
  ["rr-srv", "llama-server"],
] as const;
/** Scores against CrossEncoder.predict's for the same pairs (f32 weights; llama.cpp's kernels differ in rounding). */
const TOLERANCE = 2e-3;

let t: TestDaemon;
let ref: Reference;

beforeAll(async () => {
  const [fixture, python, binary] = await Promise.all([ensureTinyReranker(), pythonExecutable(), llamaServerBinary()]);
  ref = JSON.parse(await readFile(fixture.reference, "utf8")) as Reference;
  t = await startTestDaemon(
    {},
    [
      { id: "rr-hf", path: fixture.dir },
      { id: "rr-gguf", path: fixture.gguf, engine: "node-llama-cpp" } as { id: string; path: string },
      { id: "rr-srv", path: fixture.gguf, engine: "llama-server" } as { id: string; path: string },
    ],
    { ...process.env, TABAGENT_PYTHON: python, TABAGENT_LLAMA_SERVER: binary },
  );
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const rerank = (body: unknown, path = "/v1/rerank") => postJson(`${t.url}${path}`, body);

describe("POST /v1/rerank", () => {
  it("/v1/models says task rerank and why, for the cross-encoder folder and its GGUF", async () => {
    const models = (await t.client.models.list()).data as unknown as { id: string; tabagent: { task: string; task_reason: string; engine: string } }[];
    const byId = Object.fromEntries(models.map((m) => [m.id, m.tabagent]));
    for (const [id, engine] of ENGINES) {
      expect(byId[id]).toMatchObject({ task: "rerank", engine });
    }
    expect(byId["rr-hf"]!.task_reason).toMatch(/BertForSequenceClassification with one label/);
    expect(byId["rr-gguf"]!.task_reason).toMatch(/pooling_type = 4 \(rank\)/);
  });

  for (const [model, engine] of ENGINES) {
    it(`${engine}: ranks by relevance_score, highest first, with CrossEncoder's scores and the documents`, async () => {
      const r = await rerank({ model, query: ref.query, documents: ref.documents });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const body = r.json as unknown as RerankAnswer;
      expect(body.model).toBe(model);
      expect(body.id).toMatch(/^rerank-/);
      expect(body.results.map((x) => x.index).sort()).toEqual([0, 1, 2, 3, 4]);
      for (let i = 1; i < body.results.length; i++) expect(body.results[i - 1]!.relevance_score).toBeGreaterThanOrEqual(body.results[i]!.relevance_score);
      for (const x of body.results) {
        expect(Math.abs(x.relevance_score - ref.scores[x.index]!)).toBeLessThan(TOLERANCE);
        expect(x.document).toEqual({ text: ref.documents[x.index] });
      }
      expect(body.usage.prompt_tokens).toBeGreaterThan(ref.documents.length);
      expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens);
    });

    it(`${engine}: the openai client's generic post, top_n and return_documents false`, async () => {
      const body = (await t.client.post("/rerank", {
        body: { model, query: ref.query, documents: ref.documents.map((text) => ({ text })), top_n: 2, return_documents: false },
      })) as RerankAnswer;
      const best = ref.scores.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s);
      expect(body.results.map((x) => x.index)).toEqual([best[0]!.i, best[1]!.i]);
      expect(body.results.every((x) => x.document === undefined)).toBe(true);
    });
  }

  it("answers on llama-server's other paths too (/rerank, /v1/reranking, /reranking)", async () => {
    for (const path of ["/rerank", "/v1/reranking", "/reranking"]) {
      const r = await rerank({ model: "rr-gguf", query: ref.query, documents: ref.documents.slice(0, 2) }, path);
      expect(r.status, path).toBe(200);
      expect((r.json as unknown as RerankAnswer).results).toHaveLength(2);
    }
  });

  it("top_n larger than the documents lists them all", async () => {
    const r = await rerank({ model: "rr-gguf", query: ref.query, documents: ref.documents.slice(0, 3), top_n: 50 });
    expect((r.json as unknown as RerankAnswer).results).toHaveLength(3);
  });
});

describe("POST /v1/rerank refuses bad input with a 400 naming the parameter", () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["empty documents", { documents: [] }, "documents", /empty/],
    ["10,000 documents", { documents: Array.from({ length: 10_000 }, (_, i) => `d${i}`) }, "documents", /10000 entries, more than this server allows \(1000\)/],
    ["top_n 0", { top_n: 0 }, "top_n", /at least 1/],
    ["top_n 1.5", { top_n: 1.5 }, "top_n", /integer/],
    ["a document that is a number", { documents: ["a", 3] }, "documents[1]", /./],
    ["a document object with other fields", { documents: [{ text: "a", title: "b" }] }, "documents[0]", /./],
    ["no query", { query: undefined }, "query", /Missing/],
  ];
  for (const [what, patch, param, message] of cases) {
    it(what, async () => {
      const r = await rerank({ model: "rr-gguf", query: "q", documents: ["a", "b"], ...patch });
      expect(r.status).toBe(400);
      const { error } = r.json as unknown as ErrorAnswer;
      expect(error.param).toBe(param);
      expect(error.message).toMatch(message);
    });
  }

  for (const [model, engine] of ENGINES) {
    it(`${engine}: a document longer than the model reads (128 tokens with the query) is refused, never cut`, async () => {
      const r = await rerank({ model, query: "q", documents: ["short", "paris ".repeat(150)] });
      expect(r.status).toBe(400);
      const { error } = r.json as unknown as ErrorAnswer;
      expect(error.code).toBe("context_length_exceeded");
      expect(error.param).toMatch(/^documents(\[1\])?$/);
      expect(error.message).toMatch(/is 154 tokens; this model reads at most 128\./);
    });
  }

  it("a model of another task: 400 naming its task", async () => {
    for (const [model, task] of [
      ["tiny-chat", "chat"],
      ["tiny-embed", "embeddings"],
    ]) {
      const r = await rerank({ model, query: "q", documents: ["a"] });
      expect(r.status).toBe(400);
      const { error } = r.json as unknown as ErrorAnswer;
      expect(error.code).toBe("model_task_mismatch");
      expect(error.message).toContain(`is a${task === "embeddings" ? "n" : ""} ${task} model and cannot serve /v1/rerank`);
    }
  });

  it("a reranker on chat: 400 naming the rerank task", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "rr-gguf", messages: [{ role: "user", content: "hi" }] });
    expect(r.status).toBe(400);
    expect((r.json as unknown as ErrorAnswer).error.message).toContain("is a rerank model");
  });

  it("an unknown model: 404", async () => {
    const r = await rerank({ model: "nope", query: "q", documents: ["a"] });
    expect(r.status).toBe(404);
  });

  it("the daemon keeps serving after the refusals", async () => {
    const r = await rerank({ model: "rr-hf", query: ref.query, documents: ref.documents });
    expect(r.status).toBe(200);
  });
});
