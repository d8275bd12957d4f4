import { request } from "node:http";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/spawnCli.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const KEY = "test-key-0123456789abcdef";
let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ apiKeys: [KEY], corsOrigins: ["https://app.example"] });
});
afterAll(async () => {
  await t?.close();
});

function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const { port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("exposure and auth on the real daemon", () => {
  it("401 without the key, 200 with it through the openai client; /health stays open", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: [{ role: "user", content: "x" }] });
    expect(r.status).toBe(401);
    expect(r.json.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const ok = await client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "x" }], max_tokens: 2, temperature: 0 });
    expect(ok.choices[0]!.finish_reason).toBe("length");
    await expect(new OpenAI({ baseURL: `${t.url}/v1`, apiKey: "wrong-key-0123456789abcdef", maxRetries: 0 }).models.list()).rejects.toThrow(/401/);
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect((await fetch(`${t.url}/nothing`)).status).toBe(401); // no route existence without the key
  });

  it("a foreign Host header (DNS rebinding) → 403", async () => {
    const r = await rawGet("/v1/models", { host: "evil.example", authorization: `Bearer ${KEY}` });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.code).toBe("host_not_allowed");
    expect((await rawGet("/v1/models", { host: "localhost:1234", authorization: `Bearer ${KEY}` })).status).toBe(200);
  });

  it("CORS: the configured origin gets headers, others do not", async () => {
    const pre = await fetch(`${t.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await fetch(`${t.url}/v1/models`, { headers: { origin: "https://evil.example", authorization: `Bearer ${KEY}` } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses to bind a non-loopback address without a key unless --insecure-no-auth", async () => {
    const r = await runCli(["serve", "--host", "0.0.0.0", "--port", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/host/);
    expect(r.stderr).toMatch(/--insecure-no-auth|api key/i);
  });
});
