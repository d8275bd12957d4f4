import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { rawExchange, type RawResponse } from "./rawHttp.js";

let t: TestDaemon;
let port: number;
beforeAll(async () => {
  // A 1 s request timeout makes the 408 quick to provoke.
  t = await startTestDaemon({ requestTimeoutSeconds: 1 });
  port = Number(new URL(t.url).port);
});
afterAll(async () => {
  await t?.close();
});

/** The answer is an OpenAI envelope of type invalid_request_error, with the expected status and code. */
function expectEnvelope(response: RawResponse | null, status: number, code: string) {
  expect(response, "an HTTP response").not.toBeNull();
  expect(response!.status).toBe(status);
  expect(response!.headers["content-type"]).toMatch(/^application\/json/);
  const body = JSON.parse(response!.body) as { error: Record<string, unknown> };
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error).toMatchObject({ type: "invalid_request_error", code, param: null });
  expect(typeof body.error.message).toBe("string");
  return body.error;
}

describe("every answer is an OpenAI error envelope, protocol errors included", () => {
  it("an overlong path parameter → 414 url_too_long", async () => {
    const r = await rawExchange(port, `GET /v1/models/${"a".repeat(5000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    const e = expectEnvelope(r.response, 414, "url_too_long");
    expect(e.message).not.toContain("aaaa");
    expect(r.response!.headers["x-request-id"]).toBeTruthy();
  });

  it("a model id up to 1024 characters still reaches the route (404 model_not_found)", async () => {
    const res = await fetch(`${t.url}/v1/models/${"a".repeat(1000)}`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
  });

  it("a URL that does not decode → 400 invalid_url", async () => {
    const r = await rawExchange(port, "GET /v1/models/%ff%fe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    expectEnvelope(r.response, 400, "invalid_url");
  });

  it("a bad request line → 400 malformed_request, and the connection closes", async () => {
    const r = await rawExchange(port, "GARBAGE\r\n\r\n");
    expectEnvelope(r.response, 400, "malformed_request");
    expect(r.response!.headers.connection).toBe("close");
    expect(r.closed).toBe(true);
  });

  it("duplicate Content-Length, and Content-Length with Transfer-Encoding → 400 invalid_framing", async () => {
    const dup = await rawExchange(
      port,
      "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    );
    expectEnvelope(dup.response, 400, "invalid_framing");
    const both = await rawExchange(
      port,
      "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    expectEnvelope(both.response, 400, "invalid_framing");
  });

  it("headers over Node's limit → 431 headers_too_large, readable although the client was still sending", async () => {
    const r = await rawExchange(port, `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(200_000)}\r\n\r\n`);
    expectEnvelope(r.response, 431, "headers_too_large");
  });

  it("a request that does not arrive in time → 408 request_timeout", async () => {
    const r = await rawExchange(port, "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", 10_000);
    expectEnvelope(r.response, 408, "request_timeout");
  });

  it("HTTP/1.1 without Host → 400 missing_host", async () => {
    const r = await rawExchange(port, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    expectEnvelope(r.response, 400, "missing_host");
  });

  it("keeps serving afterwards", async () => {
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});
