import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tabagent-errors-"));
  const { chatModelPath } = await ensureFixtures();
  // A well-formed file whose header claims a third layer it has no tensors for: detection accepts it
  // (it reads only the header), llama.cpp refuses to load it.
  const whole = Buffer.from(await readFile(chatModelPath));
  const key = Buffer.from("llama.block_count");
  const at = whole.indexOf(key) + key.length;
  expect(whole.readUInt32LE(at)).toBe(4); // GGUF type UINT32
  whole.writeUInt32LE(whole.readUInt32LE(at + 4) + 1, at + 4);
  await writeFile(join(dir, "truncated.gguf"), whole);
  await copyFile(chatModelPath, join(dir, "copy.gguf"));
  t = await startTestDaemon({ bodyLimitBytes: 64 * 1024, contextSize: 256 }, [{ id: "truncated", path: join(dir, "truncated.gguf") }]);
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

function expectEnvelope(json: unknown) {
  expect(json).toHaveProperty("error");
  const e = (json as { error: Record<string, unknown> }).error;
  expect(Object.keys(e).sort()).toEqual(["code", "message", "param", "type"]);
  expect(typeof e.message).toBe("string");
  return e;
}

const chatUrl = () => `${t.url}/v1/chat/completions`;
const ok = { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 2 };

describe("bad input answers with an OpenAI error envelope", () => {
  it("malformed JSON → 400", async () => {
    const r = await postJson(chatUrl(), '{"model": "tiny-chat",');
    expect(r.status).toBe(400);
    expect(expectEnvelope(r.json)).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });
  });

  it("wrong content type → 415", async () => {
    const res = await fetch(chatUrl(), { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(ok) });
    expect(res.status).toBe(415);
    expectEnvelope(await res.json());
  });

  it("empty body and non-object bodies → 400", async () => {
    const empty = await fetch(chatUrl(), { method: "POST", headers: { "content-type": "application/json" } });
    expect(empty.status).toBe(400);
    expectEnvelope(await empty.json());
    for (const body of ["[1,2]", "42", '"x"', "null"]) {
      const r = await postJson(chatUrl(), body);
      expect(r.status, body).toBe(400);
      expectEnvelope(r.json);
    }
  });

  it("body over the limit → 413", async () => {
    const r = await postJson(chatUrl(), { ...ok, messages: [{ role: "user", content: "x".repeat(70 * 1024) }] });
    expect(r.status).toBe(413);
    expect(expectEnvelope(r.json).code).toBe("request_too_large");
  });

  it("unknown route → 404", async () => {
    const res = await fetch(`${t.url}/v1/nothing-here`);
    expect(res.status).toBe(404);
    expect(expectEnvelope(await res.json()).type).toBe("not_found_error");
  });

  it("unknown model → 404 model_not_found; ids never reach files", async () => {
    for (const model of ["nope", "../../etc/passwd", "/etc/passwd", "tiny-chat/../tiny-embed", join(t.fixtures.dir, "tiny-chat.gguf")]) {
      const r = await postJson(chatUrl(), { ...ok, model });
      expect(r.status, model).toBe(404);
      expect(expectEnvelope(r.json)).toMatchObject({ code: "model_not_found", param: "model" });
    }
    const res = await fetch(`${t.url}/v1/models/..%2F..%2Fetc%2Fpasswd`);
    expect(res.status).toBe(404);
  });

  it("schema violations name the field, without coercion", async () => {
    const cases: [object, string][] = [
      [{ max_tokens: "5" }, "max_tokens"],
      [{ temperature: "0" }, "temperature"],
      [{ messages: "hi" }, "messages"],
      [{ messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
      [{ stream: 1 }, "stream"],
      [{ model: 7 }, "model"],
    ];
    for (const [patch, param] of cases) {
      const r = await postJson(chatUrl(), { ...ok, ...patch });
      expect(r.status, param).toBe(400);
      expect(expectEnvelope(r.json).param).toBe(param);
    }
    const missing = await postJson(chatUrl(), { model: "tiny-chat" });
    expect(expectEnvelope(missing.json)).toMatchObject({ param: "messages", code: "missing_required_parameter" });
  });

  it("a value of the wrong type is invalid_value; only an absent one is missing_required_parameter", async () => {
    for (const [patch, param] of [
      [{ max_tokens: "5" }, "max_tokens"],
      [{ model: 7 }, "model"],
      [{ model: null }, "model"],
      [{ messages: "hi" }, "messages"],
      [{ messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
    ] as const) {
      const r = await postJson(chatUrl(), { ...ok, ...patch });
      expect(expectEnvelope(r.json), param).toMatchObject({ param, code: "invalid_value" });
    }
    const noContent = await postJson(chatUrl(), { ...ok, messages: [{ role: "user" }] });
    expect(expectEnvelope(noContent.json)).toMatchObject({ param: "messages[0].content", code: "missing_required_parameter" });
    const noPrompt = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat" });
    expect(expectEnvelope(noPrompt.json)).toMatchObject({ param: "prompt", code: "missing_required_parameter" });
  });

  it("functions and function_call (the deprecated spellings) are refused by name on chat and completions; tools on completions too", async () => {
    const fn = { name: "f", parameters: { type: "object", properties: {} } };
    for (const [url, base, patches] of [
      [chatUrl(), ok, [] as const],
      [`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 2 }, [[{ tools: [{ type: "function", function: fn }] }, "tools"]] as const],
    ] as const) {
      for (const [patch, param] of [[{ functions: [fn] }, "functions"], [{ function_call: { name: "f" } }, "function_call"], ...patches] as const) {
        const r = await postJson(url, { ...base, ...patch });
        expect(r.status, `${url} ${param}`).toBe(400);
        expect(expectEnvelope(r.json)).toMatchObject({ param, code: "unsupported_parameter" });
      }
      // The harmless spellings pass, as for tools.
      const r = await postJson(url, { ...base, functions: [], function_call: "none" });
      expect(r.status, url).toBe(200);
    }
  });

  it("DELETE and OPTIONS with a JSON content type and no body are not refused for the empty body", async () => {
    for (const method of ["DELETE", "OPTIONS"]) {
      const res = await fetch(`${t.url}/v1/models`, { method, headers: { "content-type": "application/json" } });
      expect(res.status, method).toBe(404);
      expect(expectEnvelope(await res.json()).code).toBe("unknown_route");
    }
  });

  it("a __proto__ or constructor.prototype key is refused by name, never called invalid JSON", async () => {
    const cases: [string, string][] = [
      ['{"model":"tiny-chat","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}', "__proto__"],
      ['{"model":"tiny-chat","messages":[{"role":"user","content":"x","__proto__":{"x":1}}]}', "messages[0].__proto__"],
      ['{"model":"tiny-chat","messages":[{"role":"user","content":"x"}],"\u005f_proto__":{"admin":true}}', "__proto__"],
      ['{"model":"tiny-chat","messages":[{"role":"user","content":"x"}],"metadata":{"constructor":{"prototype":{"a":1}}}}', "metadata.constructor"],
    ];
    for (const [body, param] of cases) {
      const r = await postJson(chatUrl(), body);
      expect(r.status, body).toBe(400);
      const e = expectEnvelope(r.json);
      expect(e).toMatchObject({ type: "invalid_request_error", code: "invalid_body", param });
      expect(e.message).toMatch(/__proto__|constructor/);
      expect(e.message).not.toMatch(/not valid JSON/);
    }
    // A key that only looks similar is fine.
    const r = await postJson(chatUrl(), { ...ok, metadata: { proto: "x", constructor: "y" } });
    expect(r.status).toBe(200);
  });

  it("unsupported parameters are refused by name, harmless unknown fields accepted", async () => {
    for (const [patch, param] of [
      [{ logit_bias: { "1": 1 } }, "logit_bias"],
      [{ prediction: { type: "content", content: "x" } }, "prediction"],
      [{ reasoning_effort: "low" }, "reasoning_effort"],
    ] as const) {
      const r = await postJson(chatUrl(), { ...ok, ...patch });
      expect(r.status, param).toBe(400);
      const e = expectEnvelope(r.json);
      expect(e).toMatchObject({ param, code: "unsupported_parameter" });
      // The serving engine is named, and which engines could do it.
      expect(e.message).toMatch(/is not supported by the node-llama-cpp engine that serves 'tiny-chat' \(no engine supports it yet\)/);
    }
    // A model that does not exist is a 404 first: capabilities are checked against the model's engine.
    const missing = await postJson(chatUrl(), { ...ok, model: "no-such-model", n: 3 });
    expect(missing.status).toBe(404);
    const r = await postJson(chatUrl(), { ...ok, user: "u", metadata: { a: "b" }, some_new_field: 1 });
    expect(r.status).toBe(200);
  });

  it("prompt longer than the context → 400 before generation (stream or not)", async () => {
    const long = Array.from({ length: 300 }, (_, i) => `word${i}`).join(" ");
    for (const stream of [false, true]) {
      const r = await postJson(chatUrl(), { ...ok, stream, messages: [{ role: "user", content: long }] });
      expect(r.status).toBe(400);
      expect(expectEnvelope(r.json)).toMatchObject({ code: "context_length_exceeded", param: "messages" });
    }
    const c = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: long });
    expect(expectEnvelope(c.json)).toMatchObject({ code: "context_length_exceeded", param: "prompt" });
    const e = await postJson(`${t.url}/v1/embeddings`, { model: "tiny-embed", input: ["ok", long] });
    expect(expectEnvelope(e.json)).toMatchObject({ code: "context_length_exceeded", param: "input[1]" });
  });

  it("a model file that fails to load → 503 with the engine's reason; twice; others keep working", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await postJson(chatUrl(), { ...ok, model: "truncated" });
      expect(r.status).toBe(503);
      const e = expectEnvelope(r.json);
      expect(e.code).toBe("model_load_failed");
      expect(e.message).toMatch(/truncated.*failed to load: \S+/);
    }
    const r = await postJson(chatUrl(), ok);
    expect(r.status).toBe(200);
  });

  it("keeps serving after all of the above", async () => {
    const r = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 3 });
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    const h = await fetch(`${t.url}/health`);
    expect(h.status).toBe(200);
  });

  it("echoes a safe x-request-id and makes one otherwise", async () => {
    const mine = await fetch(`${t.url}/health`, { headers: { "x-request-id": "abc-123" } });
    expect(mine.headers.get("x-request-id")).toBe("abc-123");
    const bad = await fetch(`${t.url}/health`, { headers: { "x-request-id": "a b\tc" } });
    expect(bad.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
