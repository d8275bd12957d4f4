// The management API's real answers fit what /openapi.json documents (both the zod schemas and the document's
// JSON Schemas), as test/api/openapi/responses.test.ts checks for the OpenAI routes.
import { readFile } from "node:fs/promises";
import type { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpenApiDocument, type JsonSchema } from "../../../src/api/openapi/buildOpenApiDocument.js";
import {
  deleteResultSchema,
  loadResultSchema,
  managedModelListSchema,
  psSchema,
  pullDoneSchema,
  pullEventSchema,
  statsSchema,
  systemSchema,
  unloadResultSchema,
} from "../../../src/api/openapi/managementSchemas.js";
import { completionChunkSchema, completionResponseSchema } from "../../../src/api/openapi/responseSchemas.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { startFakeHub, type FakeHub } from "../../helpers/fakeHub.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { tempDir } from "../../store/storeRepos.js";
import { validateJsonSchema } from "../openapi/validateJsonSchema.js";

const doc = buildOpenApiDocument();
let hub: FakeHub;
let store: Awaited<ReturnType<typeof tempDir>>;
let t: TestDaemon;

function expectShape(body: unknown, zodSchema: z.ZodType, component: string): void {
  const parsed = zodSchema.safeParse(body);
  expect(parsed.success ? [] : parsed.error.issues, `${component} (zod)`).toEqual([]);
  expect(validateJsonSchema(doc, doc.components.schemas[component] as JsonSchema, body), `${component} (document)`).toEqual([]);
}

const dataLines = (text: string) =>
  text
    .split("\n\n")
    .map((b) => b.trim())
    .filter((b) => b.startsWith("data: ") && b !== "data: [DONE]")
    .map((b) => JSON.parse(b.slice(6)) as unknown);

beforeAll(async () => {
  const gguf = await readFile((await ensureFixtures()).chatModelPath);
  hub = await startFakeHub({ "acme/doc-GGUF": { files: { "doc-Q8_0.gguf": gguf } } });
  store = await tempDir("mgmt-doc-");
  t = await startTestDaemon({ storeDir: store.path, hubUrl: hub.url }, [], {});
}, 120_000);

afterAll(async () => {
  await t?.close();
  await hub?.close();
  await store?.cleanup();
});

describe("management responses match the OpenAPI document", () => {
  it("models, load, ps, unload, stats", async () => {
    expectShape(await (await fetch(`${t.url}/api/models`)).json(), managedModelListSchema, "ManagedModelList");
    expectShape(await (await fetch(`${t.url}/api/models/tiny-embed/load`, { method: "POST" })).json(), loadResultSchema, "LoadResult");
    expectShape(await (await fetch(`${t.url}/api/ps`)).json(), psSchema, "Ps");
    expectShape(await (await fetch(`${t.url}/api/models/tiny-embed/unload`, { method: "POST" })).json(), unloadResultSchema, "UnloadResult");
    expectShape(await (await fetch(`${t.url}/api/stats`)).json(), statsSchema, "Stats");
  });

  it("pull events, the done object, delete", async () => {
    const res = await fetch(`${t.url}/api/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: "acme/doc-GGUF" }),
    });
    const all = dataLines(await res.text());
    for (const e of all) expectShape(e, pullEventSchema, "PullEvent");
    expectShape(all.at(-1), pullDoneSchema, "PullDone");
    const del = await fetch(`${t.url}/api/models/${encodeURIComponent("acme--doc-GGUF:Q8_0")}`, { method: "DELETE" });
    expectShape(await del.json(), deleteResultSchema, "DeleteResult");
  });

  it("answers with timings, whole and streamed", async () => {
    // Completions: the same timings object as chat, without a chat template to render on a busy machine.
    const body = { model: "tiny-chat", prompt: "Hi", max_tokens: 3, temperature: 0, timings: true };
    const whole = (await postJson(`${t.url}/v1/completions`, body)).json;
    expect(whole).toHaveProperty("timings");
    expectShape(whole, completionResponseSchema, "Completion");
    const chunks = dataLines((await postJson(`${t.url}/v1/completions`, { ...body, stream: true })).text);
    expect(chunks.at(-1)).toHaveProperty("timings");
    for (const chunk of chunks) expectShape(chunk, completionChunkSchema, "CompletionChunk");
  });

  it("the system report", async () => {
    expectShape(await (await fetch(`${t.url}/api/system`)).json(), systemSchema, "System");
  }, 60_000);
});
