import { describe, expect, it } from "vitest";
import { toErrorEnvelope } from "../../../src/api/openai/errorEnvelope.js";
import { ModelNotFoundError, QueueFullError } from "../../../src/core/errors.js";

describe("toErrorEnvelope", () => {
  it("maps typed errors with status, type, param, code and headers", () => {
    expect(toErrorEnvelope(new ModelNotFoundError("m"))).toMatchObject({
      status: 404,
      body: { error: { type: "not_found_error", param: "model", code: "model_not_found" } },
      unexpected: false,
    });
    expect(toErrorEnvelope(new QueueFullError("m", 3)).headers).toEqual({ "retry-after": "3" });
  });

  it("hides unexpected errors behind a generic 500", () => {
    const err = new TypeError("cannot read properties of undefined (reading 'secret')");
    const m = toErrorEnvelope(err);
    expect(m.status).toBe(500);
    expect(m.unexpected).toBe(true);
    expect(JSON.stringify(m.body)).not.toContain("secret");
    expect(m.body.error).toMatchObject({ type: "server_error", code: "server_error" });
    expect(toErrorEnvelope("a string").status).toBe(500);
  });

  it("maps Fastify's client errors, not its server errors", () => {
    const tooLarge = Object.assign(new Error("Request body is too large"), { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 });
    expect(toErrorEnvelope(tooLarge)).toMatchObject({ status: 413, body: { error: { code: "request_too_large" } } });
    const internal = Object.assign(new Error("boom"), { code: "FST_ERR_SOMETHING", statusCode: 500 });
    expect(toErrorEnvelope(internal).status).toBe(500);
  });
});
