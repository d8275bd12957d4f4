import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../src/core/errors.js";
import { MAX_SCHEMA_BYTES, toGrammarSchema } from "../../../src/backends/llamacpp/jsonSchemaGrammar.js";

function refusal(schema: Record<string, unknown>): InvalidRequestError {
  try {
    toGrammarSchema(schema, "s");
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRequestError);
    return e as InvalidRequestError;
  }
  throw new Error("expected a refusal");
}

describe("toGrammarSchema", () => {
  it("keeps constraints, drops annotations, maps anyOf to oneOf and definitions to $defs", () => {
    expect(
      toGrammarSchema(
        {
          $schema: "https://json-schema.org/draft/2020-12/schema",
          title: "T",
          type: "object",
          properties: { a: { anyOf: [{ type: "string" }, { $ref: "#/definitions/n" }], description: "x" } },
          definitions: { n: { type: "integer", default: 1 } },
          required: ["a"],
          additionalProperties: false,
        },
        "s",
      ),
    ).toEqual({
      type: "object",
      properties: { a: { oneOf: [{ type: "string" }, { $ref: "#/$defs/n" }] } },
      $defs: { n: { type: "integer" } },
      required: ["a"],
      additionalProperties: false,
    });
  });

  it("refuses a keyword it cannot enforce, naming its path", () => {
    expect(refusal({ type: "object", properties: { id: { type: "string", pattern: "x" } } }).param).toBe("s.properties.id.pattern");
    expect(refusal({ type: "number", minimum: 0 }).param).toBe("s.minimum");
    expect(refusal({ allOf: [] }).param).toBe("s.allOf");
    expect(refusal({ type: "string", format: "email" }).message).toMatch(/the format 'email'/);
    expect(refusal({ $ref: "https://example.com/s.json" }).param).toBe("s.$ref");
  });

  it("refuses a schema too large to compile", () => {
    const big = { type: "object", properties: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`field_${i}`, { type: "string" }])) };
    expect(JSON.stringify(big).length).toBeGreaterThan(MAX_SCHEMA_BYTES);
    expect(refusal(big).code).toBe("schema_too_large");
  });
});
