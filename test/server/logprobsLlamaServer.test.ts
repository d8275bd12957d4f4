// logprobs and n > 1 through a real llama-server child, next to the same GGUF on node-llama-cpp (tiny-chat): both
// report the logits' log-softmax before sampling, so they must agree.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse } from "../helpers/readSse.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
beforeAll(async () => {
  const { ensureFixtures } = await import("../fixtures/ensureFixtures.js");
  const { chatModelPath } = await ensureFixtures();
  t = await startTestDaemon({ contextSize: 512, parallel: 2 }, [{ id: "srv-chat", path: chatModelPath, engine: "llama-server" } as { id: string; path: string }], {
    ...process.env,
    TABAGENT_LLAMA_SERVER: await llamaServerBinary(),
  });
});
afterAll(() => t?.close());

interface Top {
  token: string;
  logprob: number;
  bytes: number[] | null;
}
type Content = (Top & { top_logprobs: Top[] })[];
interface ChatBody {
  choices: { index: number; message: { content: string }; logprobs: { content: Content } | null }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}
const MESSAGES = [{ role: "user", content: "Hello" }];

async function chat(model: string, body: object): Promise<ChatBody> {
  const r = await postJson(`${t.url}/v1/chat/completions`, { model, messages: MESSAGES, max_tokens: 8, ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json as unknown as ChatBody;
}

describe("llama-server: logprobs and n", () => {
  it("greedy: each token is the top alternative, logprobs ≤ 0 and sorted, top_logprobs as asked (0 too)", async () => {
    for (const top of [0, 3]) {
      const r = await chat("srv-chat", { temperature: 0, logprobs: true, top_logprobs: top });
      const content = r.choices[0]!.logprobs!.content;
      expect(content.length).toBeGreaterThan(0);
      for (const e of content) {
        expect(e.top_logprobs).toHaveLength(top);
        expect(e.logprob).toBeLessThanOrEqual(0);
        if (top > 0) expect(e.top_logprobs[0]!.token).toBe(e.token);
        const lps = e.top_logprobs.map((x) => x.logprob);
        expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      }
    }
  });

  it("agrees with node-llama-cpp on the same GGUF; the first position is the same at temperature 1.5", async () => {
    const a = await chat("srv-chat", { temperature: 0, logprobs: true, top_logprobs: 2 });
    const b = await chat("tiny-chat", { temperature: 0, logprobs: true, top_logprobs: 2 });
    const ca = a.choices[0]!.logprobs!.content;
    const cb = b.choices[0]!.logprobs!.content;
    expect(ca.map((e) => e.token)).toEqual(cb.map((e) => e.token));
    const diffs = ca.map((e, i) => Math.abs(e.logprob - cb[i]!.logprob));
    if (process.env["LOGPROBS_REPORT"]) console.log(`max |Δ logprob| llama-server vs node-llama-cpp: ${Math.max(...diffs)} over ${ca.length} tokens`);
    expect(Math.max(...diffs)).toBeLessThan(1e-3);
    // The first position's alternatives do not depend on the sampler: the same at temperature 1.5.
    const hot = await chat("srv-chat", { temperature: 1.5, seed: 3, logprobs: true, top_logprobs: 2, max_tokens: 1 });
    expect(hot.choices[0]!.logprobs!.content[0]!.top_logprobs[0]!.logprob).toBeCloseTo(ca[0]!.top_logprobs[0]!.logprob, 3);
  });

  it("streamed chat and completions carry the logprobs of each chunk's tokens", async () => {
    const body = { model: "srv-chat", messages: MESSAGES, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 1, stream: true };
    const res = await fetch(`${t.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const events = (await readSse(res))
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; logprobs: { content: Top[] } | null }[] });
    const tokens = events.flatMap((e) => e.choices[0]?.logprobs?.content ?? []);
    expect(tokens.length).toBeGreaterThan(0);
    const text = events.map((e) => e.choices[0]?.delta.content ?? "").join("");
    expect(tokens.map((x) => x.token).join("")).toBe(text);

    const c = await postJson(`${t.url}/v1/completions`, { model: "srv-chat", prompt: "The cat", max_tokens: 5, temperature: 0, logprobs: 2 });
    expect(c.status).toBe(200);
    const lp = (c.json as unknown as { choices: { logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[] } }[] }).choices[0]!
      .logprobs;
    expect(lp.tokens.length).toBeGreaterThan(0);
    expect(lp.token_logprobs.every((x) => x <= 0)).toBe(true);
  });

  it("n: 3 greedy gives three identical choices; with a seed, reproducible choices (choice i = seed + i)", async () => {
    const one = await chat("srv-chat", { temperature: 0 });
    const r = await chat("srv-chat", { temperature: 0, n: 3 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.choices) expect(c.message.content).toBe(one.choices[0]!.message.content);
    expect(r.usage.prompt_tokens).toBe(one.usage.prompt_tokens);
    expect(r.usage.completion_tokens).toBe(3 * one.usage.completion_tokens);

    // n: 3 is more than the 2 slots: llama-server queues the third.
    const body = { temperature: 1, seed: 99, n: 3, max_tokens: 12 };
    const a = await chat("srv-chat", body);
    const b = await chat("srv-chat", body);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    const third = await chat("srv-chat", { temperature: 1, seed: 101, max_tokens: 12 });
    expect(a.choices[2]!.message.content).toBe(third.choices[0]!.message.content);
  });

  it("the openai SDK parses them", async () => {
    const r = await t.client.chat.completions.create({
      model: "srv-chat",
      messages: MESSAGES as never,
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      n: 2,
    });
    expect(r.choices).toHaveLength(2);
    expect(r.choices[1]!.logprobs!.content![0]!.top_logprobs).toHaveLength(2);
  });
});
