import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { buildOpenApiDocument, type JsonSchema } from "../../../src/api/openapi/buildOpenApiDocument.js";
import {
  chatCompletionChunkSchema,
  chatCompletionResponseSchema,
  completionChunkSchema,
  completionResponseSchema,
  embeddingResponseSchema,
  errorEnvelopeSchema,
  healthSchema,
  modelListSchema,
  modelSchema,
  readySchema,
} from "../../../src/api/openapi/responseSchemas.js";
import type { Backend } from "../../../src/backends/Backend.js";
import type { ChatRequest, CompletionRequest, EmbedRequest, EmbedResult, GenerationChunk, ModelDescriptor } from "../../../src/core/types.js";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { ModelRegistry } from "../../../src/registry/ModelRegistry.js";
import { createDaemon, type Daemon } from "../../../src/server/createDaemon.js";
import { registerReadyRoute } from "../../../src/server/metrics/registerReadyRoute.js";
import { testDescriptor } from "../../helpers/testDescriptor.js";
import { validateJsonSchema } from "./validateJsonSchema.js";

/** Answers every request at once with fixed text: enough to see the daemon's real response shapes. */
class FixedBackend implements Backend {
  readonly parallel = 2;
  constructor(readonly descriptor: ModelDescriptor) {}
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async *chat(_request: ChatRequest): AsyncIterable<GenerationChunk> {
    yield* this.generate();
  }
  async *complete(_request: CompletionRequest): AsyncIterable<GenerationChunk> {
    yield* this.generate();
  }
  async embed(request: EmbedRequest): Promise<EmbedResult> {
    return { vectors: request.input.map(() => [0.6, 0.8]), promptTokens: 2 * request.input.length };
  }
  private async *generate(): AsyncIterable<GenerationChunk> {
    yield { type: "text", index: 0, text: "Hi" };
    yield { type: "text", index: 0, text: " there" };
    yield { type: "finish", index: 0, reason: "length" };
    yield { type: "usage", usage: { promptTokens: 4, completionTokens: 2 } };
  }
}

const doc = JSON.parse(JSON.stringify(buildOpenApiDocument())) as ReturnType<typeof buildOpenApiDocument>;
let daemon: Daemon;
let app: FastifyInstance;

beforeAll(async () => {
  const base = testDescriptor();
  const registry = new ModelRegistry([
    testDescriptor({ id: "chat" }),
    testDescriptor({ id: "embed", task: "embeddings", detection: { ...base.detection, task: "embeddings", hasChatTemplate: false, engine: null, warnings: ["w"] } }),
  ]);
  // The real daemon (its app, routes and error mapping) with an engine that answers at once.
  daemon = await createDaemon({
    config: loadConfig({ base: { host: "127.0.0.1", port: 0, logLevel: "silent", models: [] } }),
    logger: pino({ level: "silent" }),
    registry,
    backends: { "node-llama-cpp": (d) => new FixedBackend(d) },
  });
  app = daemon.app;
  // Until the daemon serves /ready itself.
  if (!app.hasRoute({ method: "GET", url: "/ready" })) registerReadyRoute(app, () => ({ ready: true }));
  await app.ready();
});
afterAll(async () => {
  await daemon?.close();
});

/** The body must fit both the zod schema and the document's JSON Schema for the component. */
function expectShape(body: unknown, zodSchema: z.ZodType, component: string): void {
  const parsed = zodSchema.safeParse(body);
  expect(parsed.success ? [] : parsed.error.issues, `${component} (zod)`).toEqual([]);
  expect(validateJsonSchema(doc, doc.components.schemas[component] as JsonSchema, body), `${component} (document)`).toEqual([]);
}

function events(payload: string): unknown[] {
  const data = payload
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice(6));
  expect(data.at(-1)).toBe("[DONE]");
  return data.slice(0, -1).map((d) => JSON.parse(d) as unknown);
}

const post = (url: string, payload: object) => app.inject({ method: "POST", url, payload });

describe("real responses match the documented schemas", () => {
  it("models, one model, health and readiness", async () => {
    const list = await app.inject({ method: "GET", url: "/v1/models" });
    expect(list.statusCode).toBe(200);
    expectShape(list.json(), modelListSchema, "ModelList");
    expect(list.json<{ data: unknown[] }>().data).toHaveLength(2);
    expectShape((await app.inject({ method: "GET", url: "/v1/models/chat" })).json(), modelSchema, "Model");
    expectShape((await app.inject({ method: "GET", url: "/health" })).json(), healthSchema, "Health");
    expectShape((await app.inject({ method: "GET", url: "/ready" })).json(), readySchema, "Ready");
  });

  it("chat completions, whole and streamed (with and without usage)", async () => {
    const messages = [{ role: "user", content: "hi" }];
    const whole = await post("/v1/chat/completions", { model: "chat", messages });
    expect(whole.statusCode).toBe(200);
    expectShape(whole.json(), chatCompletionResponseSchema, "ChatCompletion");
    for (const include_usage of [true, false]) {
      const streamed = await post("/v1/chat/completions", { model: "chat", messages, stream: true, stream_options: { include_usage } });
      expect(streamed.headers["content-type"]).toMatch(/^text\/event-stream/);
      const chunks = events(streamed.payload);
      expect(chunks.length).toBe(include_usage ? 5 : 4);
      for (const chunk of chunks) expectShape(chunk, chatCompletionChunkSchema, "ChatCompletionChunk");
    }
  });

  it("text completions, whole (several prompts, echo) and streamed", async () => {
    const whole = await post("/v1/completions", { model: "chat", prompt: ["a", "b"], echo: true });
    expect(whole.statusCode).toBe(200);
    expectShape(whole.json(), completionResponseSchema, "Completion");
    const streamed = await post("/v1/completions", { model: "chat", prompt: "a", stream: true, stream_options: { include_usage: true } });
    for (const chunk of events(streamed.payload)) expectShape(chunk, completionChunkSchema, "CompletionChunk");
  });

  it("embeddings as floats and as base64", async () => {
    for (const encoding_format of ["float", "base64"]) {
      const r = await post("/v1/embeddings", { model: "embed", input: ["a", "b"], encoding_format });
      expect(r.statusCode, r.payload).toBe(200);
      expectShape(r.json(), embeddingResponseSchema, "EmbeddingList");
    }
  });

  it("errors: validation, unknown model, unknown route, wrong task", async () => {
    const cases = [
      await post("/v1/chat/completions", { model: "chat", messages: [] }),
      await post("/v1/chat/completions", { model: "nope", messages: [{ role: "user", content: "x" }] }),
      await app.inject({ method: "GET", url: "/v1/nothing" }),
      await post("/v1/embeddings", { model: "chat", input: "x" }),
      await app.inject({ method: "GET", url: "/v1/models/nope" }),
    ];
    expect(cases.map((c) => c.statusCode)).toEqual([400, 404, 404, 400, 404]);
    for (const c of cases) expectShape(c.json(), errorEnvelopeSchema, "ErrorEnvelope");
  });
});
