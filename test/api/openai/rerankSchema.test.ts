import { describe, expect, it } from "vitest";
import { parseBody } from "../../../src/api/openai/parseBody.js";
import { MAX_RERANK_CHARACTERS, rankResults, rerankBodySchema, toRerankRequest } from "../../../src/api/openai/rerankSchema.js";

const body = (extra: object = {}) => parseBody(rerankBodySchema, { model: "m", query: "q", documents: ["a", { text: "b" }, "c"], ...extra });

describe("rerank schema", () => {
  it("takes documents as strings or {text} objects", () => {
    expect(toRerankRequest(body())).toEqual({ query: "q", documents: ["a", "b", "c"] });
  });

  it("sorts by score (ties in request order), cuts to top_n, and returns the texts unless told not to", () => {
    expect(rankResults(["a", "b", "c"], [0.2, 0.9, 0.2], body())).toEqual([
      { index: 1, relevance_score: 0.9, document: { text: "b" } },
      { index: 0, relevance_score: 0.2, document: { text: "a" } },
      { index: 2, relevance_score: 0.2, document: { text: "c" } },
    ]);
    expect(rankResults(["a", "b", "c"], [0.2, 0.9, 0.3], body({ top_n: 2, return_documents: false }))).toEqual([
      { index: 1, relevance_score: 0.9 },
      { index: 2, relevance_score: 0.3 },
    ]);
  });

  it("refuses more characters than the limit, naming it", () => {
    const big = "x".repeat(MAX_RERANK_CHARACTERS / 2);
    expect(() => toRerankRequest(body({ documents: [big, big, "y"] }))).toThrow(`more than this server allows (${MAX_RERANK_CHARACTERS})`);
  });
});
