import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

const KEY = "sk-tabagent-management-aaaaaaaa";
const started: TestDaemon[] = [];
let keyed: TestDaemon;
let readOnly: TestDaemon;

async function call(method: string, url: string, headers: Record<string, string> = {}, body?: unknown) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as { error?: { code: string; type: string } } & Record<string, unknown>;
  return { status: res.status, json };
}

beforeAll(async () => {
  keyed = await startTestDaemon({ apiKeys: [KEY] }, [], {});
  readOnly = await startTestDaemon({ readOnly: true }, [], {});
  started.push(keyed, readOnly);
}, 120_000);

afterAll(async () => {
  for (const d of started.splice(0)) await d.close();
});

describe("management API with an API key configured", () => {
  it("every /api route needs the key, the mutating ones from loopback too", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/api/models"],
      ["GET", "/api/ps"],
      ["GET", "/api/stats"],
      ["GET", "/api/system"],
      ["POST", "/api/models/pull", { source: "acme/x" }],
      ["POST", "/api/models/tiny-chat/load"],
      ["POST", "/api/models/tiny-chat/unload"],
      ["DELETE", "/api/models/tiny-chat"],
    ];
    for (const [method, path, body] of routes) {
      const r = await call(method, `${keyed.url}${path}`, {}, body);
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.json.error?.code).toBe("invalid_api_key");
      const wrong = await call(method, `${keyed.url}${path}`, { authorization: "Bearer sk-tabagent-wrong-key-bbbbbbbb" }, body);
      expect(wrong.status, `${method} ${path} with a wrong key`).toBe(401);
    }
    const auth = { authorization: `Bearer ${KEY}` };
    expect((await call("GET", `${keyed.url}/api/models`, auth)).status).toBe(200);
    expect(await call("POST", `${keyed.url}/api/models/tiny-embed/load`, auth)).toMatchObject({ status: 200, json: { state: "loaded" } });
    expect(await call("POST", `${keyed.url}/api/models/tiny-embed/unload`, auth)).toMatchObject({ status: 200, json: { was_loaded: true } });
    expect((await call("DELETE", `${keyed.url}/api/models/tiny-chat`, auth)).json.error?.code).toBe("not_removable");
  });
});

describe("read-only mode", () => {
  it("refuses every POST and DELETE under /api with 403 read_only, and still answers the reads", async () => {
    for (const [method, path, body] of [
      ["POST", "/api/models/pull", { source: "acme/x" }],
      ["POST", "/api/models/tiny-chat/load", undefined],
      ["POST", "/api/models/tiny-chat/unload", undefined],
      ["DELETE", "/api/models/tiny-chat", undefined],
    ] as const) {
      const r = await call(method, `${readOnly.url}${path}`, {}, body);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.json.error).toMatchObject({ code: "read_only", type: "permission_error" });
    }
    expect((await call("GET", `${readOnly.url}/api/models`)).status).toBe(200);
    expect((await call("GET", `${readOnly.url}/api/ps`)).json).toMatchObject({ models: [] });
    // Generation is not management: it still works.
    const r = await readOnly.client.completions.create({ model: "tiny-chat", prompt: "hi", max_tokens: 2, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe("length");
  });
});

describe("a daemon listening beyond loopback without keys (--insecure-no-auth)", () => {
  it("reads, but refuses to change anything: 403 management_forbidden", async () => {
    const open = await startTestDaemon({ host: "0.0.0.0", insecureNoAuth: true }, [], {});
    started.push(open);
    const url = open.url;
    expect((await call("GET", `${url}/api/models`)).status).toBe(200);
    const r = await call("POST", `${url}/api/models/tiny-chat/load`);
    expect(r.status).toBe(403);
    expect(r.json.error?.code).toBe("management_forbidden");
  });
});
