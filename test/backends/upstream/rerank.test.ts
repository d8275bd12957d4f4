import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyReranker } from "../../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

let upstream: TestDaemon;
let front: TestDaemon;
let ref: { query: string; documents: string[] };

beforeAll(async () => {
  const fixture = await ensureTinyReranker();
  ref = JSON.parse(await readFile(fixture.reference, "utf8")) as typeof ref;
  // Another daemon stands in for any server with /v1/rerank (llama-server, vLLM): it serves the GGUF reranker.
  upstream = await startTestDaemon({}, [{ id: "rr", path: fixture.gguf }]);
  front = await startTestDaemon({ models: [], upstreams: [{ name: "local", baseUrl: `${upstream.url}/v1`, prefix: "up/" }] });
}, 120_000);
afterAll(async () => {
  await front?.close();
  await upstream?.close();
});

describe("rerank through an upstream server", () => {
  it("passes /v1/rerank through and ranks the upstream's scores; top_n and documents are the front's", async () => {
    const direct = await postJson(`${upstream.url}/v1/rerank`, { model: "rr", query: ref.query, documents: ref.documents });
    const via = await postJson(`${front.url}/v1/rerank`, { model: "up/rr", query: ref.query, documents: ref.documents, top_n: 3 });
    expect(via.status, JSON.stringify(via.json)).toBe(200);
    type Answer = { model: string; results: { index: number; relevance_score: number; document?: { text: string } }[] };
    const a = direct.json as unknown as Answer;
    const b = via.json as unknown as Answer;
    expect(b.model).toBe("up/rr");
    expect(b.results).toEqual(a.results.slice(0, 3));
  });

  it("an upstream's refusal comes back as its error (a chat model there cannot rerank)", async () => {
    const r = await postJson(`${front.url}/v1/rerank`, { model: "up/tiny-chat", query: "q", documents: ["a"] });
    expect(r.status).toBe(400);
    expect((r.json as unknown as { error: { message: string } }).error.message).toContain("cannot serve /v1/rerank");
  });
});
