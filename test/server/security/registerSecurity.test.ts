import OpenAI from "openai";
import { PassThrough } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, startSecurityTestApp, type SecurityTestApp } from "./securityTestApp.js";

const KEY_A = "sk-tabagent-aaaaaaaaaaaaaaaaaaaa";
const KEY_B = "sk-tabagent-bbbbbbbbbbbbbbbbbbbb";
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

function expectEnvelope(json: unknown) {
  const e = (json as { error: Record<string, unknown> }).error;
  expect(Object.keys(e).sort()).toEqual(["code", "message", "param", "type"]);
  expect(e.param).toBeNull();
  return e;
}

async function getJson(url: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await fetch(url, { method, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? (JSON.parse(text) as unknown) : null };
}

describe("authentication off (no keys)", () => {
  let t: SecurityTestApp;
  beforeAll(async () => (t = await startSecurityTestApp({})));
  afterAll(() => t.close());

  it("serves every route without a key, and unknown routes are a plain 404", async () => {
    expect((await getJson(`${t.url}/v1/models`)).status).toBe(200);
    const missing = await getJson(`${t.url}/v1/nothing`);
    expect(missing.status).toBe(404);
    expect(expectEnvelope(missing.json).code).toBe("unknown_route");
    expect(t.summary).toMatchObject({ auth: false, keyCount: 0, cors: false });
  });

  it("works with the openai client whatever key it sends", async () => {
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: "anything", maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["tiny-chat"]);
  });
});

describe("authentication with keys", () => {
  let t: SecurityTestApp;
  beforeAll(async () => (t = await startSecurityTestApp({ apiKeys: [KEY_A, KEY_B] })));
  afterAll(() => t.close());

  it("missing key → 401 authentication_error envelope with WWW-Authenticate: Bearer", async () => {
    const r = await getJson(`${t.url}/v1/models`);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe("Bearer");
    expect(r.headers.get("x-request-id")).toBeTruthy(); // the request-id hook ran first
    expect(expectEnvelope(r.json)).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
  });

  it("wrong key → 401, and the message does not echo it", async () => {
    const wrong = "sk-tabagent-wrongwrongwrongwrong";
    const r = await getJson(`${t.url}/v1/models`, bearer(wrong));
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe("Bearer");
    expect(expectEnvelope(r.json)).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
    expect(r.text).not.toContain(wrong);
  });

  it("other schemes, an empty bearer, and a key prefix are refused", async () => {
    for (const authorization of [
      `Basic ${Buffer.from(`u:${KEY_A}`).toString("base64")}`,
      "Bearer ",
      "Bearer",
      KEY_A,
      `Bearer ${KEY_A.slice(0, -1)}`,
      `Bearer ${KEY_A}x`,
    ]) {
      const r = await getJson(`${t.url}/v1/models`, { authorization });
      expect(r.status, authorization).toBe(401);
    }
  });

  it("every configured key is accepted; the scheme is case-insensitive", async () => {
    expect((await getJson(`${t.url}/v1/models`, bearer(KEY_A))).status).toBe(200);
    expect((await getJson(`${t.url}/v1/models`, bearer(KEY_B))).status).toBe(200);
    expect((await getJson(`${t.url}/v1/models`, { authorization: `bearer ${KEY_B}` })).status).toBe(200);
  });

  it("/health and /ready stay open (GET, HEAD, trailing slash), other methods on them do not", async () => {
    expect((await getJson(`${t.url}/health`)).status).toBe(200);
    expect((await getJson(`${t.url}/health/`)).status).toBe(200);
    expect((await getJson(`${t.url}/ready`)).status).toBe(200);
    expect((await getJson(`${t.url}/health`, {}, "HEAD")).status).toBe(200);
    expect((await getJson(`${t.url}/health?x=1`)).status).toBe(200);
    expect((await getJson(`${t.url}/health`, {}, "POST")).status).toBe(401);
    expect((await getJson(`${t.url}/v1/models?/health`)).status).toBe(401);
  });

  it("unknown routes need the key before they answer 404 (no existence leak)", async () => {
    const r = await getJson(`${t.url}/v1/secret-admin`);
    expect(r.status).toBe(401);
    expect(expectEnvelope(r.json).code).toBe("invalid_api_key");
    const authed = await getJson(`${t.url}/v1/secret-admin`, bearer(KEY_A));
    expect(authed.status).toBe(404);
    expect(expectEnvelope(authed.json).code).toBe("unknown_route");
  });

  it("the openai client: right key lists models and streams; wrong key gets an AuthenticationError", async () => {
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    expect((await client.models.list()).data[0]?.id).toBe("tiny-chat");
    const stream = await client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Hi there");
    const whole = await client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }] });
    expect(whole.choices[0]?.message.content).toBe("Hi there");

    const bad = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: "sk-tabagent-not-a-configured-key", maxRetries: 0 });
    const err = await bad.models.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err).toMatchObject({ status: 401, code: "invalid_api_key", type: "authentication_error" });
    const streamErr = await bad.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], stream: true }).catch((e: unknown) => e);
    expect(streamErr).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe("authentication details", () => {
  let t: SecurityTestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("openPaths: [] puts /health behind the key too", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A], openPaths: [] });
    expect((await getJson(`${t.url}/health`)).status).toBe(401);
    expect((await getJson(`${t.url}/health`, bearer(KEY_A))).status).toBe(200);
  });

  it("keys never reach the log, right or wrong", async () => {
    const log = new PassThrough();
    let logged = "";
    log.on("data", (d: Buffer) => (logged += d.toString()));
    t = await startSecurityTestApp({ apiKeys: [KEY_A] }, { logStream: log });
    const wrong = "sk-tabagent-wrongwrongwrongwrong";
    await getJson(`${t.url}/v1/models`, bearer(KEY_A));
    await getJson(`${t.url}/v1/models`, bearer(wrong));
    await getJson(`${t.url}/v1/models`, { authorization: wrong });
    await t.close();
    t = undefined;
    expect(logged).toContain("request failed"); // the log was captured at all
    expect(logged).not.toContain("tabagent-aaaa");
    expect(logged).not.toContain("wrongwrong");
  });
});

describe("Host check (DNS rebinding)", () => {
  let t: SecurityTestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("refuses a foreign Host with a 403 envelope, before authentication", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A] });
    for (const host of ["evil.example", `evil.example:${t.port}`, "localhost.evil.example", "127.0.0.1.nip.io", "localhost.", "[::2]"]) {
      const r = await rawRequest(t.port, { path: "/v1/models", headers: { host, ...bearer(KEY_A) } });
      expect(r.status, host).toBe(403);
      expect(expectEnvelope(r.json), host).toMatchObject({ type: "permission_error", code: "host_not_allowed" });
    }
    const noKey = await rawRequest(t.port, { path: "/v1/models", headers: { host: "evil.example" } });
    expect(noKey.status).toBe(403);
    const health = await rawRequest(t.port, { path: "/health", headers: { host: "evil.example" } });
    expect(health.status).toBe(403);
  });

  it("accepts loopback names with any port", async () => {
    t = await startSecurityTestApp({});
    for (const host of ["localhost", `localhost:${t.port}`, "LOCALHOST:1", `127.0.0.1:${t.port}`, "127.0.0.1", "127.1.2.3:80", `[::1]:${t.port}`, "[::1]"]) {
      const r = await rawRequest(t.port, { path: "/v1/models", headers: { host } });
      expect(r.status, host).toBe(200);
    }
  });

  it("accepts the bind address when it is not a wildcard, and the configured names", async () => {
    t = await startSecurityTestApp({ bindHost: "192.168.7.9", allowedHosts: ["TabAgent.lan", "::2"] });
    for (const host of ["192.168.7.9:8471", "tabagent.lan", "tabagent.lan:443", "[::2]:1"]) {
      expect((await rawRequest(t.port, { path: "/v1/models", headers: { host } })).status, host).toBe(200);
    }
    expect((await rawRequest(t.port, { path: "/v1/models", headers: { host: "192.168.7.10" } })).status).toBe(403);
  });

  it("a wildcard bind adds nothing; '*' turns the check off", async () => {
    t = await startSecurityTestApp({ bindHost: "0.0.0.0" });
    expect((await rawRequest(t.port, { path: "/v1/models", headers: { host: "0.0.0.0:8471" } })).status).toBe(403);
    await t.close();
    t = await startSecurityTestApp({ bindHost: "0.0.0.0", allowedHosts: ["*"] });
    expect((await rawRequest(t.port, { path: "/v1/models", headers: { host: "evil.example" } })).status).toBe(200);
    expect(t.summary?.hosts).toBe("*");
  });

  it("applies to preflights too", async () => {
    t = await startSecurityTestApp({ corsOrigins: ["https://app.example"] });
    const r = await rawRequest(t.port, {
      method: "OPTIONS",
      path: "/v1/models",
      headers: { host: "evil.example", origin: "https://app.example", "access-control-request-method": "GET" },
    });
    expect(r.status).toBe(403);
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
  });
});

describe("CORS", () => {
  let t: SecurityTestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });
  const preflight = (origin: string, extra: Record<string, string> = {}) =>
    getJson(`${t!.url}/v1/chat/completions`, { origin, "access-control-request-method": "POST", ...extra }, "OPTIONS");

  it("is off by default: no CORS headers, and preflights are refused", async () => {
    t = await startSecurityTestApp({});
    const r = await getJson(`${t.url}/v1/models`, { origin: "https://app.example" });
    expect(r.status).toBe(200);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
    expect(r.headers.get("vary")).toBeNull();
    const p = await preflight("https://app.example");
    expect(p.status).toBe(403);
    expect(expectEnvelope(p.json)).toMatchObject({ type: "permission_error", code: "cors_origin_not_allowed" });
    expect(p.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("answers a preflight from an allowed origin with 204, before authentication", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A], corsOrigins: ["https://App.Example:443/"] });
    const p = await preflight("https://app.example", { "access-control-request-headers": "authorization, content-type, x-stainless-os" });
    expect(p.status).toBe(204);
    expect(p.text).toBe("");
    expect(p.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(p.headers.get("access-control-allow-methods")).toBe("GET, POST, OPTIONS");
    expect(p.headers.get("access-control-allow-headers")).toBe("authorization, content-type, x-stainless-os");
    expect(p.headers.get("access-control-max-age")).toBe("600");
    expect(p.headers.get("vary")).toMatch(/^Origin\b/);
    expect(p.headers.get("access-control-allow-credentials")).toBeNull();
    // A malformed header list is not reflected.
    const odd = await preflight("https://app.example", { "access-control-request-headers": "x-a, ,;bad" });
    expect(odd.headers.get("access-control-allow-headers")).toBe("authorization, content-type, x-request-id");
    // Chrome's Private Network Access preflight.
    const pna = await preflight("https://app.example", { "access-control-request-private-network": "true" });
    expect(pna.headers.get("access-control-allow-private-network")).toBe("true");
  });

  it("refuses a preflight from another origin with 403 and no CORS headers", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A], corsOrigins: ["https://app.example"] });
    for (const origin of ["https://evil.example", "http://app.example", "https://app.example:8443", "null"]) {
      const p = await preflight(origin);
      expect(p.status, origin).toBe(403);
      expect(expectEnvelope(p.json).code).toBe("cors_origin_not_allowed");
      expect(p.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  it("actual requests: allowed origin gets Allow-Origin (errors and streams too), others get none", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A], corsOrigins: ["https://app.example"] });
    const ok = await getJson(`${t.url}/v1/models`, { origin: "https://app.example", ...bearer(KEY_A) });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(ok.headers.get("access-control-expose-headers")).toContain("x-request-id");
    expect(ok.headers.get("vary")).toBe("Origin");

    const unauthorized = await getJson(`${t.url}/v1/models`, { origin: "https://app.example" });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("access-control-allow-origin")).toBe("https://app.example"); // readable by the page

    const stream = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { origin: "https://app.example", "content-type": "application/json", ...bearer(KEY_A) },
      body: JSON.stringify({ model: "tiny-chat", messages: [], stream: true }),
    });
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    expect(stream.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(await stream.text()).toContain("data: [DONE]");

    const other = await getJson(`${t.url}/v1/models`, { origin: "https://evil.example", ...bearer(KEY_A) });
    expect(other.status).toBe(200);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    expect(other.headers.get("vary")).toBe("Origin");
  });

  it("'*' allows any web origin but no extension; an extension origin works only when listed", async () => {
    const ext = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    t = await startSecurityTestApp({ corsOrigins: ["*"] });
    expect((await preflight("https://anything.example")).status).toBe(204);
    expect((await preflight("http://localhost:5173")).status).toBe(204);
    expect((await preflight(ext)).status).toBe(403);
    expect((await preflight("moz-extension://0b7e4f8c-5d2a-4c61-9a3e-1f2d3c4b5a69")).status).toBe(403);
    expect((await preflight("null")).status).toBe(403);
    const simple = await getJson(`${t.url}/v1/models`, { origin: ext });
    expect(simple.headers.get("access-control-allow-origin")).toBeNull();
    await t.close();

    t = await startSecurityTestApp({ corsOrigins: [ext] });
    const p = await preflight(ext);
    expect(p.status).toBe(204);
    expect(p.headers.get("access-control-allow-origin")).toBe(ext);
    expect((await preflight("chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba")).status).toBe(403);
    expect((await preflight("https://anything.example")).status).toBe(403);
  });

  it("an OPTIONS request that is not a preflight goes through authentication like any other", async () => {
    t = await startSecurityTestApp({ apiKeys: [KEY_A], corsOrigins: ["*"] });
    expect((await getJson(`${t.url}/v1/models`, {}, "OPTIONS")).status).toBe(401);
    expect((await getJson(`${t.url}/v1/models`, { origin: "https://a.example" }, "OPTIONS")).status).toBe(401);
  });
});
