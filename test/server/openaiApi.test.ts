import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ bodyLimitBytes: 64 * 1024 });
});
afterAll(async () => {
  await t?.close();
});

const hello = [{ role: "user" as const, content: "Hello" }];

describe("models", () => {
  it("lists models with format, backend and load state", async () => {
    const page = await t.client.models.list();
    const ids = page.data.map((m) => m.id).sort();
    expect(ids).toEqual(["tiny-chat", "tiny-embed"]);
    const chat = page.data.find((m) => m.id === "tiny-chat") as unknown as Record<string, unknown>;
    expect(chat).toMatchObject({
      object: "model",
      owned_by: "tabagent",
      tabagent: { format: "gguf", engine: "node-llama-cpp", task: "chat", architecture: "llama", chat_template: true },
    });
    expect(typeof chat.created).toBe("number");
    // The engine's capabilities, from the engine table: what a request may use on this model.
    expect((chat.tabagent as { capabilities: string[] }).capabilities).toEqual([
      "chat",
      "completions",
      "embeddings",
      "rerank",
      "tokenIds",
      "tools",
      "jsonObject",
      "jsonSchema",
      "logprobs",
      "multipleChoices",
    ]);
  });

  it("retrieves one model and 404s an unknown one", async () => {
    const m = await t.client.models.retrieve("tiny-embed");
    expect(m.id).toBe("tiny-embed");
    const res = await fetch(`${t.url}/v1/models/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
  });
});

describe("chat completions", () => {
  it("answers deterministically at temperature 0 with engine-counted usage", async () => {
    const a = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 12, temperature: 0 });
    const b = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 12, temperature: 0 });
    expect(a.object).toBe("chat.completion");
    expect(a.id).toMatch(/^chatcmpl-/);
    expect(a.model).toBe("tiny-chat");
    expect(a.choices[0]!.message.role).toBe("assistant");
    expect(a.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    expect(a.choices[0]!.finish_reason).toBe("length");
    expect(a.usage!.completion_tokens).toBe(12);
    expect(a.usage!.prompt_tokens).toBeGreaterThan(5);
    expect(a.usage!.total_tokens).toBe(a.usage!.prompt_tokens + 12);
  });

  it("streams role first, one piece per chunk, finish, usage, and the same text as non-streaming", async () => {
    const whole = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 40, temperature: 0 });
    const stream = await t.client.chat.completions.create({
      model: "tiny-chat",
      messages: hello,
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const pieces = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).filter((p) => p.length > 0);
    expect(pieces.length).toBeGreaterThan(5);
    for (const p of pieces) expect(p).not.toContain("\uFFFD");
    expect(pieces.join("")).toBe(whole.choices[0]!.message.content);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0]!.finish_reason)).toEqual(["length"]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it("ends the raw SSE stream with data: [DONE] and omits usage without include_usage", async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-chat", messages: hello, max_tokens: 3, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = res.text.split("\n\n").filter(Boolean);
    expect(events.at(-1)).toBe("data: [DONE]");
    for (const e of events.slice(0, -1)) expect(JSON.parse(e.slice(6))).not.toHaveProperty("usage");
  });

  it("stops at a stop sequence (string or array), streamed or not", async () => {
    const full = (await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 30, temperature: 0 })).choices[0]!.message.content!;
    const stop = full.slice(10, 13);
    const expected = full.slice(0, full.indexOf(stop));
    const a = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 30, temperature: 0, stop });
    expect(a.choices[0]!.message.content).toBe(expected);
    expect(a.choices[0]!.finish_reason).toBe("stop");
    const s = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 30, temperature: 0, stop: ["\u0000never", stop], stream: true });
    let text = "";
    let reason: string | null = null;
    for await (const c of s) {
      text += c.choices[0]?.delta.content ?? "";
      reason = c.choices[0]?.finish_reason ?? reason;
    }
    expect(text).toBe(expected);
    expect(reason).toBe("stop");
  });

  it("accepts max_completion_tokens, seed, top_p and penalties", async () => {
    const r = await t.client.chat.completions.create({
      model: "tiny-chat",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: [{ type: "text", text: "Hi" }] },
      ],
      max_completion_tokens: 5,
      temperature: 0.8,
      top_p: 0.9,
      seed: 42,
      presence_penalty: 0.5,
      frequency_penalty: 0.5,
      user: "someone",
      metadata: { team: "x" },
    });
    expect(r.usage!.completion_tokens).toBe(5);
    const again = await t.client.chat.completions.create({
      model: "tiny-chat",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: [{ type: "text", text: "Hi" }] },
      ],
      max_completion_tokens: 5,
      temperature: 0.8,
      top_p: 0.9,
      seed: 42,
      presence_penalty: 0.5,
      frequency_penalty: 0.5,
    });
    expect(again.choices[0]!.message.content).toBe(r.choices[0]!.message.content);
  });

  it("outputs multi-byte characters whole", async () => {
    const r = await t.client.chat.completions.create({ model: "tiny-chat", messages: hello, max_tokens: 60, temperature: 0 });
    const content = r.choices[0]!.message.content!;
    expect(content).not.toContain("\uFFFD");
    expect([...content].some((ch) => ch.codePointAt(0)! > 127)).toBe(true);
  });
});

describe("completions", () => {
  it("completes a prompt, streamed and not, with the same text", async () => {
    const whole = await t.client.completions.create({ model: "tiny-chat", prompt: "The cat", max_tokens: 16, temperature: 0 });
    expect(whole.object).toBe("text_completion");
    expect(whole.choices[0]!.finish_reason).toBe("length");
    expect(whole.usage!.completion_tokens).toBe(16);
    const stream = await t.client.completions.create({
      model: "tiny-chat",
      prompt: "The cat",
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? "";
      usage = c.usage ?? usage;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(usage).toEqual(whole.usage);
  });

  it("answers one choice per prompt in an array, and echoes", async () => {
    const r = await t.client.completions.create({ model: "tiny-chat", prompt: ["The cat", "A dog"], max_tokens: 4, temperature: 0, echo: true });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices[0]!.text.startsWith("The cat")).toBe(true);
    expect(r.choices[1]!.text.startsWith("A dog")).toBe(true);
    expect(r.usage!.completion_tokens).toBe(8);
  });
});

describe("embeddings", () => {
  it("embeds strings and lists as unit vectors, float and base64", async () => {
    const r = await t.client.embeddings.create({ model: "tiny-embed", input: ["hello world", "the cat"], encoding_format: "float" });
    expect(r.data.map((d) => d.index)).toEqual([0, 1]);
    const [a, b] = r.data.map((d) => d.embedding);
    expect(a!.length).toBeGreaterThan(8);
    expect(Math.hypot(...a!)).toBeCloseTo(1, 4);
    expect(a).not.toEqual(b);
    expect(r.usage.prompt_tokens).toBeGreaterThan(2);
    const raw = await postJson(`${t.url}/v1/embeddings`, { model: "tiny-embed", input: "hello world", encoding_format: "base64" });
    const data = (raw.json.data as { embedding: string }[])[0]!.embedding;
    const bytes = Buffer.from(data, "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(decoded.length).toBe(a!.length);
    decoded.forEach((x, i) => expect(x).toBeCloseTo(a![i]!, 5));
  });

  it("refuses to embed with a chat model and to chat with an embedding model", async () => {
    const e = await postJson(`${t.url}/v1/embeddings`, { model: "tiny-chat", input: "x" });
    expect(e.status).toBe(400);
    expect(e.json.error).toMatchObject({ param: "model", code: "model_task_mismatch" });
    expect(e.json.error!.message).toMatch(/chat model/);
    const c = await postJson(`${t.url}/v1/chat/completions`, { model: "tiny-embed", messages: hello });
    expect(c.status).toBe(400);
    expect(c.json.error!.message).toMatch(/embeddings model/);
    const p = await postJson(`${t.url}/v1/completions`, { model: "tiny-embed", prompt: "x" });
    expect(p.status).toBe(400);
  });
});

describe("health", () => {
  it("says which models are loaded", async () => {
    const res = await fetch(`${t.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; loaded: string[] };
    expect(body.status).toBe("ok");
    expect(body.loaded).toContain("tiny-chat");
  });
});
