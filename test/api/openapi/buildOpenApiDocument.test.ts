import { describe, expect, it } from "vitest";
import { buildOpenApiDocument, type JsonSchema } from "../../../src/api/openapi/buildOpenApiDocument.js";
import { resolvePointer, unsupportedKeywords, validateJsonSchema } from "./validateJsonSchema.js";

const doc = buildOpenApiDocument({ version: "1.2.3" });
const json = JSON.parse(JSON.stringify(doc)) as typeof doc;
const schemas = json.components.schemas;

function walk(node: unknown, visit: (obj: Record<string, unknown>, path: string) => void, path = "#"): void {
  if (Array.isArray(node)) node.forEach((n, i) => walk(n, visit, `${path}/${i}`));
  else if (node !== null && typeof node === "object") {
    visit(node as Record<string, unknown>, path);
    for (const [k, v] of Object.entries(node)) walk(v, visit, `${path}/${k}`);
  }
}

const validate = (schema: JsonSchema, value: unknown) => validateJsonSchema(json, schema, value);

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1.0 and survives JSON unchanged", () => {
    expect(json.openapi).toBe("3.1.0");
    expect(json.info).toMatchObject({ title: "TabAgent", version: "1.2.3" });
    expect(json).toEqual(doc); // nothing JSON cannot carry (undefined, functions, NaN)
  });

  it("has every path with its method, unique operation ids, and declared path parameters", () => {
    const expected: [string, "get" | "post"][] = [
      ["/v1/chat/completions", "post"],
      ["/v1/completions", "post"],
      ["/v1/embeddings", "post"],
      ["/v1/models", "get"],
      ["/v1/models/{id}", "get"],
      ["/health", "get"],
      ["/ready", "get"],
      ["/metrics", "get"],
    ];
    for (const [path, method] of expected) expect(json.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    const ids: string[] = [];
    for (const [path, item] of Object.entries(json.paths)) {
      for (const op of Object.values(item)) {
        ids.push(op.operationId);
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        expect((op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name)).toEqual(templated);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("every $ref resolves inside the document, and components carry no $schema or $id", () => {
    const refs: string[] = [];
    walk(json, (obj) => {
      if (typeof obj.$ref === "string") refs.push(obj.$ref);
    });
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) expect(() => resolvePointer(json, ref), ref).not.toThrow();
    for (const [name, schema] of Object.entries(schemas)) {
      expect(schema, name).not.toHaveProperty("$schema");
      expect(schema, name).not.toHaveProperty("$id");
    }
    expect(Object.keys(schemas)).not.toContain("__shared");
  });

  it("the chat request: messages and model required, max_tokens an integer ≥ 1, defaults not required", () => {
    const chat = schemas.ChatCompletionRequest!;
    expect(chat.type).toBe("object");
    expect(chat.required).toEqual(expect.arrayContaining(["model", "messages"]));
    expect(chat.required).not.toContain("stream");
    expect(chat.required).not.toContain("max_tokens");
    const props = chat.properties as Record<string, JsonSchema>;
    const maxTokens = props.max_tokens!;
    expect(maxTokens.anyOf).toEqual(expect.arrayContaining([expect.objectContaining({ type: "integer", minimum: 1 }), { type: "null" }]));
    expect(props.messages).toMatchObject({ type: "array", minItems: 1 });
    expect(props.temperature!.description).toMatch(/greedy/);
    // Unknown fields are accepted, so the schema must not forbid them.
    expect(chat.additionalProperties).toBeUndefined();

    expect(validate(chat, { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 5, extra: 1 })).toEqual([]);
    expect(validate(chat, { model: "m", messages: [] })).not.toEqual([]);
    expect(validate(chat, { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 1.5 })).not.toEqual([]);
    expect(validate(chat, { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: "5" })).not.toEqual([]);
    expect(validate(chat, { messages: [{ role: "user", content: "hi" }] })).toEqual(["$: missing 'model'"]);
  });

  it("completions and embeddings requests come from their wire schemas", () => {
    expect(schemas.CompletionRequest!.required).toEqual(expect.arrayContaining(["model", "prompt"]));
    expect(schemas.EmbeddingRequest!.required).toEqual(expect.arrayContaining(["model", "input"]));
    expect(validate(schemas.CompletionRequest!, { model: "m", prompt: ["a", "b"], echo: true })).toEqual([]);
    expect(validate(schemas.EmbeddingRequest!, { model: "m", input: "x", encoding_format: "base64" })).toEqual([]);
    expect(validate(schemas.EmbeddingRequest!, { model: "m", input: "x", encoding_format: "int8" })).not.toEqual([]);
  });

  it("streaming is documented as text/event-stream with the chunk schema", () => {
    for (const [path, chunk, whole] of [
      ["/v1/chat/completions", "ChatCompletionChunk", "ChatCompletion"],
      ["/v1/completions", "CompletionChunk", "Completion"],
    ] as const) {
      const ok = json.paths[path]!.post!.responses["200"]!;
      expect("content" in ok).toBe(true);
      const content = (ok as { content: Record<string, { schema: JsonSchema; "x-tabagent-event-schema"?: { $ref: string } }> }).content;
      expect(content["application/json"]!.schema).toEqual({ $ref: `#/components/schemas/${whole}` });
      expect(content["text/event-stream"]!.schema.type).toBe("string");
      expect(content["text/event-stream"]!["x-tabagent-event-schema"]).toEqual({ $ref: `#/components/schemas/${chunk}` });
    }
  });

  it("errors are the envelope, models carry the tabagent extension", () => {
    const notFound = resolvePointer(json, "#/components/responses/ModelNotFound") as { content: Record<string, { schema: JsonSchema }> };
    expect(notFound.content["application/json"]!.schema).toEqual({ $ref: "#/components/schemas/ErrorEnvelope" });
    const envelope = { error: { message: "x", type: "not_found_error", param: "model", code: "model_not_found" } };
    expect(validate(schemas.ErrorEnvelope!, envelope)).toEqual([]);
    expect(validate(schemas.ErrorEnvelope!, { error: { message: "x" } })).not.toEqual([]);
    const model = schemas.Model!.properties as Record<string, JsonSchema>;
    expect(model.tabagent!.anyOf).toEqual([{ $ref: "#/components/schemas/LocalModelExtension" }, { $ref: "#/components/schemas/UpstreamModelExtension" }]);
    expect((schemas.LocalModelExtension!.properties as Record<string, JsonSchema>).engine!.anyOf).toContainEqual({ type: "null" });
  });

  it("uses only JSON Schema keywords the validator knows (so the checks above are not vacuous)", () => {
    for (const [name, schema] of Object.entries(schemas)) expect(unsupportedKeywords(schema), name).toEqual([]);
  });
});
