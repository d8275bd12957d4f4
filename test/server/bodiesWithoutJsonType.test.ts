import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { rawExchange } from "./rawHttp.js";

let t: TestDaemon;
let port: number;
beforeAll(async () => {
  t = await startTestDaemon();
  port = Number(new URL(t.url).port);
});
afterAll(async () => {
  await t?.close();
});

const ok = { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 2 };

/** A POST exactly as written: `type` null sends no Content-Type header at all (fetch would add one). */
async function post(path: string, body: string, type: string | null) {
  const head = [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Length: ${Buffer.byteLength(body)}`, "Connection: close"];
  if (type !== null) head.push(`Content-Type: ${type}`);
  const { response } = await rawExchange(port, `${head.join("\r\n")}\r\n\r\n${body}`, 30_000);
  expect(response).not.toBeNull();
  return { status: response!.status, json: JSON.parse(response!.body) as { error?: { message: string; type: string; code: string | null } } & Record<string, unknown> };
}

describe("JSON bodies sent without a JSON content type", () => {
  it.each([
    ["no Content-Type", null],
    ["application/x-www-form-urlencoded (curl -d)", "application/x-www-form-urlencoded"],
    ["a form type with a charset", "application/x-www-form-urlencoded; charset=utf-8"],
  ])("%s: a JSON body is taken", async (_name, type) => {
    const r = await post("/v1/chat/completions", JSON.stringify(ok), type);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ object: "chat.completion", model: "tiny-chat" });
    const e = await post("/v1/embeddings", JSON.stringify({ model: "tiny-embed", input: "hello" }), type);
    expect(e.status, JSON.stringify(e.json)).toBe(200);
  });

  it("a form body that is not JSON: 415 saying it was sent as a form and JSON is expected", async () => {
    const r = await post("/v1/chat/completions", "model=tiny-chat&messages=hello", "application/x-www-form-urlencoded");
    expect(r.status).toBe(415);
    expect(r.json.error).toMatchObject({ type: "invalid_request_error", code: "unsupported_media_type" });
    expect(r.json.error!.message).toMatch(/application\/x-www-form-urlencoded .*not JSON.*Content-Type: application\/json/);
  });

  it("a body with no Content-Type that is not JSON: 400 saying so", async () => {
    const r = await post("/v1/chat/completions", "hello there", null);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });
    expect(r.json.error!.message).toMatch(/no Content-Type and its body is not JSON/);
  });

  it.each(["text/plain", "multipart/form-data; boundary=x", "application/xml"])("another explicit type stays a 415: %s", async (type) => {
    const r = await post("/v1/chat/completions", JSON.stringify(ok), type);
    expect(r.status).toBe(415);
    expect(r.json.error).toMatchObject({ code: "unsupported_media_type", message: "Unsupported Content-Type: send the body as application/json." });
  });

  it("an unknown route is still a 404, whatever the type", async () => {
    for (const type of [null, "text/plain", "application/x-www-form-urlencoded"]) {
      const r = await post("/v1/nothing-here", JSON.stringify(ok), type);
      expect(r.status, String(type)).toBe(404);
      expect(r.json.error?.code).toBe("unknown_route");
    }
  });
});

describe("GET /", () => {
  it("is a 404 envelope pointing to /docs, /v1/models and /health", async () => {
    const res = await fetch(`${t.url}/`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
    expect(body.error).toMatchObject({ type: "not_found_error", code: "unknown_route" });
    for (const route of ["/docs", "/v1/models", "/health"]) expect(body.error.message).toContain(route);
    // Other unknown routes keep naming themselves.
    const other = (await (await fetch(`${t.url}/nothing`)).json()) as { error: { message: string } };
    expect(other.error.message).toBe("Unknown route: GET /nothing");
  });

  it("/health says the version", async () => {
    const health = (await (await fetch(`${t.url}/health`)).json()) as { status: string; version?: string };
    expect(health).toMatchObject({ status: "ok", version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown });
  });
});
