import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse } from "../helpers/readSse.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
beforeAll(async () => {
  const { ensureFixtures } = await import("../fixtures/ensureFixtures.js");
  const { chatModelPath } = await ensureFixtures();
  t = await startTestDaemon({ contextSize: 512 }, [{ id: "srv-chat", path: chatModelPath, engine: "llama-server" } as { id: string; path: string }], {
    ...process.env,
    TABAGENT_LLAMA_SERVER: await llamaServerBinary(),
  });
});
afterAll(() => t?.close());

interface Choice {
  index: number;
  text: string;
  token_ids?: number[];
  prompt_token_ids?: number[];
}

describe("return_token_ids", () => {
  it("an array prompt gives each choice its own prompt and answer ids, matching the usage counts", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: ["Hello", "The cat sat"], max_tokens: 5, temperature: 0, return_token_ids: true });
    expect(r.status).toBe(200);
    const choices = (r.json as unknown as { choices: Choice[]; usage: { prompt_tokens: number; completion_tokens: number } }).choices;
    expect(choices.map((c) => c.index)).toEqual([0, 1]);
    for (const c of choices) {
      expect(c.token_ids).toHaveLength(5);
      expect(c.prompt_token_ids!.length).toBeGreaterThan(0);
    }
    const usage = (r.json as unknown as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    expect(usage.prompt_tokens).toBe(choices[0]!.prompt_token_ids!.length + choices[1]!.prompt_token_ids!.length);
    expect(usage.completion_tokens).toBe(10);
  });

  it("streamed: the ids arrive with the text they became, the prompt's on the first event, and add up to the whole answer", async () => {
    const body = { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 12, temperature: 0, return_token_ids: true };
    const whole = await postJson(`${t.url}/v1/chat/completions`, body);
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const events = (await readSse(res))
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)) as { prompt_token_ids?: number[]; choices: { token_ids?: number[] }[] });
    const w = whole.json as unknown as { prompt_token_ids: number[]; choices: { token_ids: number[] }[] };
    expect(events.find((e) => e.prompt_token_ids)?.prompt_token_ids).toEqual(w.prompt_token_ids);
    expect(events.flatMap((e) => e.choices[0]?.token_ids ?? [])).toEqual(w.choices[0]!.token_ids);
    expect(w.choices[0]!.token_ids).toHaveLength(12);
  });

  it("an engine that cannot report ids refuses the parameter instead of ignoring it; without it nothing changes", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: "srv-chat", prompt: "Hi", max_tokens: 2, return_token_ids: true });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "unsupported_parameter", param: "return_token_ids" });
    const plain = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 2 });
    expect(JSON.stringify(plain.json)).not.toContain("token_ids");
    const bad = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 2, return_token_ids: "yes" });
    expect(bad.status).toBe(400);
    expect(bad.json.error!.param).toBe("return_token_ids");
  });
});
