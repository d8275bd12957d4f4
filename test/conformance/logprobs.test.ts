// logprobs and n > 1 on the in-process engines, on the conformance fixture: one tiny random llama as GGUF F32
// (node-llama-cpp) and ONNX (onnxruntime), from the same weights, so their logprobs can be compared too.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyLlmGguf, ensureTinyLlmOnnx } from "../fixtures/ensurePythonFixtures.js";
import { readSse } from "../helpers/readSse.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const MODELS = { "llm-llamacpp": "node-llama-cpp", "llm-onnx": "onnxruntime" } as const;
const CHAT = [{ role: "user", content: "What colour is the sky?" }];
/**
 * How far the two engines' logprobs of the same greedy token may differ: both compute F32 logits from the same
 * weights (llama.cpp's kernels against ONNX Runtime's), then a log-softmax (node-llama-cpp's in float32).
 * Measured: at most 1.9e-3 over 16 greedy tokens of this fixture.
 */
const TOLERANCE = 1e-2;

interface Top {
  token: string;
  logprob: number;
  bytes: number[] | null;
}
interface ChatChoice {
  index: number;
  message: { content: string };
  logprobs: { content: (Top & { top_logprobs: Top[] })[] } | null;
  finish_reason: string;
}
interface ChatBody {
  choices: ChatChoice[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

let t: TestDaemon;
beforeAll(async () => {
  const [gguf, onnx] = await Promise.all([ensureTinyLlmGguf(), ensureTinyLlmOnnx()]);
  t = await startTestDaemon({ contextSize: 1024, parallel: 2 }, [
    { id: "llm-llamacpp", path: gguf },
    { id: "llm-onnx", path: onnx.dir },
  ]);
}, 300_000);
afterAll(async () => {
  await t?.close();
});

async function chat(model: string, body: object): Promise<ChatBody> {
  const r = await postJson(`${t.url}/v1/chat/completions`, { model, messages: CHAT, max_tokens: 12, ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json as unknown as ChatBody;
}

describe.each(Object.entries(MODELS))("%s (%s)", (model) => {
  it("greedy: each token is its position's most likely one, logprobs ≤ 0, alternatives sorted, text matches", async () => {
    const r = await chat(model, { temperature: 0, logprobs: true, top_logprobs: 3 });
    const choice = r.choices[0]!;
    const content = choice.logprobs!.content;
    expect(content).toHaveLength(r.usage.completion_tokens);
    for (const e of content) {
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.top_logprobs[0]!.token).toBe(e.token);
      expect(e.logprob).toBeCloseTo(e.top_logprobs[0]!.logprob, 6);
      expect(e.logprob).toBeLessThanOrEqual(0);
      const lps = e.top_logprobs.map((x) => x.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      expect(e.bytes).toEqual([...Buffer.from(e.token, "utf8")]);
    }
    if (choice.finish_reason === "length") expect(content.map((e) => e.token).join("")).toBe(choice.message.content);
  });

  it("streamed: each chunk carries the logprobs of its own tokens, the same as the whole answer's", async () => {
    const body = { model, messages: CHAT, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 };
    const whole = (await postJson(`${t.url}/v1/chat/completions`, body)).json as unknown as ChatBody;
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const events = (await readSse(res))
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; logprobs: { content: Top[] } | null }[] });
    const streamed = events.flatMap((e) => e.choices[0]?.logprobs?.content ?? []);
    expect(streamed).toEqual(whole.choices[0]!.logprobs!.content);
    for (const e of events) {
      const c = e.choices[0];
      if (c?.logprobs && c.delta.content) expect(c.logprobs.content.map((x) => x.token).join("")).toBe(c.delta.content);
    }
  });

  it("completions: the legacy shape, with text offsets", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model, prompt: "The sky is", max_tokens: 8, temperature: 0, logprobs: 2 });
    expect(r.status).toBe(200);
    const c = (
      r.json as unknown as {
        choices: { text: string; logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]; text_offset: number[] } }[];
      }
    ).choices[0]!;
    const lp = c.logprobs;
    expect(lp.tokens).toHaveLength(8);
    expect(lp.tokens.join("")).toBe(c.text);
    expect(lp.token_logprobs.every((x) => x <= 0)).toBe(true);
    lp.tokens.forEach((tok, i) => {
      expect(lp.top_logprobs[i]![tok]).toBeCloseTo(lp.token_logprobs[i]!, 6);
      expect(Object.keys(lp.top_logprobs[i]!).length).toBeLessThanOrEqual(3);
      expect(lp.text_offset[i]).toBe(lp.tokens.slice(0, i).join("").length);
    });
  });

  it("n: 3 greedy gives three identical choices, usage counts the prompt once", async () => {
    const one = await chat(model, { temperature: 0 });
    const r = await chat(model, { temperature: 0, n: 3 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.choices) expect(c.message.content).toBe(one.choices[0]!.message.content);
    expect(r.usage.prompt_tokens).toBe(one.usage.prompt_tokens);
    expect(r.usage.completion_tokens).toBe(3 * one.usage.completion_tokens);
  });

  it("n: 3 with a seed: reproducible, each choice its own seed stream (choice i is the seed + i one-choice answer)", async () => {
    const body = { temperature: 1, seed: 1234, n: 3, max_tokens: 16 };
    const a = await chat(model, body);
    const b = await chat(model, body);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    const second = await chat(model, { temperature: 1, seed: 1235, max_tokens: 16 });
    expect(a.choices[1]!.message.content).toBe(second.choices[0]!.message.content);
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
  });

  it("n: 5 with 2 parallel slots runs in waves; streamed choices each keep their order", async () => {
    const body = { model, messages: CHAT, max_tokens: 10, temperature: 0, n: 5 };
    const whole = (await postJson(`${t.url}/v1/chat/completions`, body)).json as unknown as ChatBody;
    expect(whole.choices).toHaveLength(5);
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const text = new Map<number, string>();
    for (const e of (await readSse(res)).split("\n\n").filter((x) => x.startsWith("data: {"))) {
      for (const c of (JSON.parse(e.slice(6)) as { choices: { index: number; delta: { content?: string } }[] }).choices) {
        text.set(c.index, (text.get(c.index) ?? "") + (c.delta.content ?? ""));
      }
    }
    expect([...text.keys()].sort()).toEqual([0, 1, 2, 3, 4]);
    for (const c of whole.choices) expect(text.get(c.index)).toBe(c.message.content);
  });

  it("the openai SDK parses logprobs and several choices", async () => {
    const r = await t.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      n: 2,
    });
    expect(r.choices).toHaveLength(2);
    expect(r.choices[0]!.logprobs!.content![0]!.top_logprobs).toHaveLength(2);
  });
});

describe("cross-engine: the same weights give the same logprobs", () => {
  it(`greedy tokens' logprobs agree within ${TOLERANCE}`, async () => {
    const [a, b] = await Promise.all(Object.keys(MODELS).map((m) => chat(m, { temperature: 0, logprobs: true, top_logprobs: 2, max_tokens: 16 })));
    const ca = a!.choices[0]!.logprobs!.content;
    const cb = b!.choices[0]!.logprobs!.content;
    expect(ca.map((e) => e.token)).toEqual(cb.map((e) => e.token));
    const diffs = ca.flatMap((e, i) => [Math.abs(e.logprob - cb[i]!.logprob), Math.abs(e.top_logprobs[1]!.logprob - cb[i]!.top_logprobs[1]!.logprob)]);
    if (process.env["LOGPROBS_REPORT"]) console.log(`max |Δ logprob| node-llama-cpp vs onnxruntime: ${Math.max(...diffs)} over ${ca.length} tokens`);
    expect(Math.max(...diffs)).toBeLessThan(TOLERANCE);
  });

  it("a temperature is taken back out: the values at temperature 0.7 equal those at temperature 1", async () => {
    for (const model of Object.keys(MODELS)) {
      const r = await chat(model, { temperature: 0.7, seed: 7, logprobs: true, top_logprobs: 2, max_tokens: 8 });
      for (const e of r.choices[0]!.logprobs!.content) expect(e.logprob).toBeLessThanOrEqual(0);
      // The first token's alternatives depend on the prompt only.
      const g = await chat(model, { temperature: 0, logprobs: true, top_logprobs: 2, max_tokens: 1 });
      const first = r.choices[0]!.logprobs!.content[0]!.top_logprobs;
      const greedyFirst = g.choices[0]!.logprobs!.content[0]!.top_logprobs;
      expect(first.map((x) => x.token)).toEqual(greedyFirst.map((x) => x.token));
      first.forEach((x, i) => expect(Math.abs(x.logprob - greedyFirst[i]!.logprob)).toBeLessThan(1e-4));
    }
  });

  it("node-llama-cpp refuses logprobs with a sampler that reshapes the distribution; ONNX takes it", async () => {
    const body = { messages: CHAT, max_tokens: 4, logprobs: true, top_p: 0.5 };
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "llm-llamacpp", ...body });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "unsupported_parameter", param: "top_p" });
    expect((await postJson(`${t.url}/v1/chat/completions`, { model: "llm-onnx", ...body })).status).toBe(200);
  });
});
