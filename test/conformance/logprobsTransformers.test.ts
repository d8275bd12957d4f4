// logprobs and n > 1 on the transformers engine (the real Python sidecar), on the conformance fixture: one tiny
// random llama as safetensors (transformers), GGUF F32 (node-llama-cpp) and ONNX (onnxruntime), from the same
// weights, so the three engines' logprobs can be compared too.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateJsonSchema } from "../api/openapi/validateJsonSchema.js";
import { ensureTinyLlm, ensureTinyLlmGguf, ensureTinyLlmOnnx, pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { readSse } from "../helpers/readSse.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const MODEL = "llm-transformers";
const CHAT = [{ role: "user", content: "What colour is the sky?" }];
/**
 * How far another engine's logprobs of the same greedy token may differ from transformers': all three compute F32
 * logits from the same weights (torch, ONNX Runtime and llama.cpp kernels), then a log-softmax (torch's in float32,
 * the ONNX engine's in JS doubles, node-llama-cpp's from its float32 probabilities, the temperature taken back out).
 * Measured over 16 greedy tokens of this fixture (chosen and second-best): onnxruntime 9.5e-7, node-llama-cpp 1.9e-3.
 */
const TOLERANCE: Record<string, number> = { "llm-onnx": 1e-5, "llm-llamacpp": 3e-3 };

interface Top {
  token: string;
  logprob: number;
  bytes: number[] | null;
}
type Entry = Top & { top_logprobs: Top[] };
interface ChatChoice {
  index: number;
  message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] };
  logprobs: { content: Entry[] } | null;
  finish_reason: string;
}
interface ChatBody {
  choices: ChatChoice[];
  usage: { prompt_tokens: number; completion_tokens: number };
}
interface StreamEvent {
  choices: { index: number; delta: { content?: string }; logprobs: { content: Entry[] } | null; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
}

let t: TestDaemon;
beforeAll(async () => {
  const [st, gguf, onnx, python] = await Promise.all([ensureTinyLlm(), ensureTinyLlmGguf(), ensureTinyLlmOnnx(), pythonExecutable()]);
  t = await startTestDaemon(
    {
      contextSize: 1024,
      parallel: 2,
      models: [
        { id: MODEL, path: st },
        { id: "llm-llamacpp", path: gguf },
        { id: "llm-onnx", path: onnx.dir },
      ],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python },
  );
}, 300_000);
afterAll(async () => {
  await t?.close();
});

async function chat(body: object, model = MODEL): Promise<ChatBody> {
  const r = await postJson(`${t.url}/v1/chat/completions`, { model, messages: CHAT, max_tokens: 12, ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json as unknown as ChatBody;
}

async function stream(path: string, body: object): Promise<StreamEvent[]> {
  const res = await fetch(`${t.url}/v1/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  expect(res.status).toBe(200);
  return (await readSse(res))
    .split("\n\n")
    .filter((e) => e.startsWith("data: {"))
    .map((e) => JSON.parse(e.slice(6)) as StreamEvent);
}

function expectValidEntries(content: Entry[], top: number): void {
  for (const e of content) {
    expect(e.top_logprobs).toHaveLength(top);
    expect(e.logprob).toBeLessThanOrEqual(0);
    const lps = e.top_logprobs.map((x) => x.logprob);
    expect([...lps].sort((a, b) => b - a)).toEqual(lps);
    for (const x of [e, ...e.top_logprobs]) {
      expect(x.logprob).toBeLessThanOrEqual(0);
      expect(x.bytes).toEqual([...Buffer.from(x.token, "utf8")]);
    }
  }
}

describe("transformers: logprobs", () => {
  it("greedy: each token is its position's most likely one, logprobs ≤ 0, alternatives sorted, text matches", async () => {
    const r = await chat({ temperature: 0, logprobs: true, top_logprobs: 3 });
    const choice = r.choices[0]!;
    const content = choice.logprobs!.content;
    expect(content).toHaveLength(r.usage.completion_tokens);
    expectValidEntries(content, 3);
    for (const e of content) {
      expect(e.top_logprobs[0]!.token).toBe(e.token);
      expect(e.logprob).toBeCloseTo(e.top_logprobs[0]!.logprob, 6);
    }
    if (choice.finish_reason === "length") expect(content.map((e) => e.token).join("")).toBe(choice.message.content);
  });

  it("streamed: each chunk carries the logprobs of its own tokens, the same as the whole answer's", async () => {
    const body = { model: MODEL, messages: CHAT, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 };
    const whole = (await postJson(`${t.url}/v1/chat/completions`, body)).json as unknown as ChatBody;
    const events = await stream("chat/completions", body);
    expect(events.flatMap((e) => e.choices[0]?.logprobs?.content ?? [])).toEqual(whole.choices[0]!.logprobs!.content);
    for (const e of events) {
      const c = e.choices[0];
      if (c?.logprobs && c.delta.content) expect(c.logprobs.content.map((x) => x.token).join("")).toBe(c.delta.content);
    }
  });

  it("top_logprobs 0 lists the chosen tokens only; without logprobs there are none", async () => {
    const r = await chat({ temperature: 0, logprobs: true, top_logprobs: 0, max_tokens: 4 });
    expect(r.choices[0]!.logprobs!.content).toHaveLength(4);
    for (const e of r.choices[0]!.logprobs!.content) expect(e.top_logprobs).toEqual([]);
    expect((await chat({ temperature: 0, max_tokens: 4 })).choices[0]!.logprobs).toBeNull();
  });

  it("completions: the legacy shape, with text offsets", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: MODEL, prompt: "The sky is", max_tokens: 8, temperature: 0, logprobs: 2 });
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

  it("the values are before the samplers: a temperature, top_k or a penalty leaves the first token's unchanged", async () => {
    const g = await chat({ temperature: 0, logprobs: true, top_logprobs: 3, max_tokens: 1 });
    const greedyFirst = g.choices[0]!.logprobs!.content[0]!.top_logprobs;
    for (const sampling of [{ temperature: 0.7 }, { temperature: 1.3, top_k: 2 }, { temperature: 1, top_p: 0.5, presence_penalty: 1.5 }]) {
      const r = await chat({ ...sampling, seed: 7, logprobs: true, top_logprobs: 3, max_tokens: 6 });
      expectValidEntries(r.choices[0]!.logprobs!.content, 3);
      const first = r.choices[0]!.logprobs!.content[0]!.top_logprobs;
      expect(first.map((x) => x.token)).toEqual(greedyFirst.map((x) => x.token));
      first.forEach((x, i) => expect(Math.abs(x.logprob - greedyFirst[i]!.logprob)).toBeLessThan(1e-5));
    }
  });

  it("under a grammar the values are the model's own (before the mask): valid JSON, logprobs ≤ 0", async () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    const r = await chat({
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      max_tokens: 40,
      response_format: { type: "json_schema", json_schema: { name: "v", schema, strict: true } },
    });
    const c = r.choices[0]!;
    expect(validateJsonSchema({}, schema, JSON.parse(c.message.content!))).toEqual([]);
    expectValidEntries(c.logprobs!.content, 2);
    expect(c.logprobs!.content.map((e) => e.token).join("")).toBe(c.message.content);
    // The grammar forces `{"ok":`, which a random model does not pick itself: some chosen tokens are below the top.
    expect(c.logprobs!.content.some((e) => e.logprob < e.top_logprobs[0]!.logprob)).toBe(true);
  });

  it("the openai SDK parses logprobs and several choices", async () => {
    const r = await t.client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      n: 2,
    });
    expect(r.choices).toHaveLength(2);
    expect(r.choices[1]!.logprobs!.content![0]!.top_logprobs).toHaveLength(2);
    const s = await t.client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, logprobs: true, n: 2, stream: true });
    const seen = new Set<number>();
    for await (const chunk of s) for (const c of chunk.choices) if (c.logprobs?.content?.length) seen.add(c.index);
    expect([...seen].sort()).toEqual([0, 1]);
  });
});

describe("transformers: n choices in one batch", () => {
  it("n: 3 greedy gives three identical choices, usage counts the prompt once", async () => {
    const one = await chat({ temperature: 0 });
    const r = await chat({ temperature: 0, n: 3 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.choices) expect(c.message.content).toBe(one.choices[0]!.message.content);
    expect(r.usage.prompt_tokens).toBe(one.usage.prompt_tokens);
    expect(r.usage.completion_tokens).toBe(3 * one.usage.completion_tokens);
  });

  it("n: 3 with a seed: reproducible, each choice its own seed stream (choice i is the seed + i one-choice answer)", async () => {
    const body = { temperature: 1, seed: 1234, n: 3, max_tokens: 16 };
    const a = await chat(body);
    const b = await chat(body);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    for (const i of [1, 2]) {
      const alone = await chat({ temperature: 1, seed: 1234 + i, max_tokens: 16 });
      expect(a.choices[i]!.message.content).toBe(alone.choices[0]!.message.content);
    }
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
  });

  it("choices that end at different lengths (a stop sequence) each keep their own text and count", async () => {
    const body = { temperature: 1, seed: 99, n: 4, max_tokens: 24, stop: ["e"] };
    const r = await chat(body);
    let sum = 0;
    for (const c of r.choices) {
      const alone = await chat({ ...body, n: 1, seed: 99 + c.index });
      expect(c.message.content).toBe(alone.choices[0]!.message.content);
      expect(c.finish_reason).toBe(alone.choices[0]!.finish_reason);
      sum += alone.usage.completion_tokens;
    }
    expect(r.usage.completion_tokens).toBe(sum);
  });

  it("streamed: the choices' chunks interleave, each with its index and in order, logprobs with their own choice", async () => {
    const body = { model: MODEL, messages: CHAT, max_tokens: 10, temperature: 1, seed: 5, n: 3, logprobs: true, top_logprobs: 1 };
    const whole = (await postJson(`${t.url}/v1/chat/completions`, body)).json as unknown as ChatBody;
    const events = await stream("chat/completions", { ...body, stream_options: { include_usage: true } });
    const order: number[] = [];
    const text = new Map<number, string>();
    const lps = new Map<number, Entry[]>();
    for (const e of events) {
      for (const c of e.choices) {
        if (c.delta.content) order.push(c.index);
        text.set(c.index, (text.get(c.index) ?? "") + (c.delta.content ?? ""));
        lps.set(c.index, [...(lps.get(c.index) ?? []), ...(c.logprobs?.content ?? [])]);
      }
    }
    expect([...text.keys()].sort()).toEqual([0, 1, 2]);
    for (const c of whole.choices) {
      expect(text.get(c.index)).toBe(c.message.content);
      expect(lps.get(c.index)).toEqual(c.logprobs!.content);
    }
    // One decode loop: choice 1's first text comes before choice 0's last.
    expect(order.indexOf(1)).toBeLessThan(order.lastIndexOf(0));
    expect(events.at(-1)!.usage).toEqual(expect.objectContaining({ prompt_tokens: whole.usage.prompt_tokens, completion_tokens: whole.usage.completion_tokens }));
  });

  it("return_token_ids with n: each choice its own ids, streamed and not; the prompt's once", async () => {
    const body = { model: MODEL, messages: CHAT, max_tokens: 8, temperature: 1, seed: 21, n: 2, return_token_ids: true };
    const whole = (await postJson(`${t.url}/v1/chat/completions`, body)).json as unknown as { prompt_token_ids: number[]; choices: { token_ids: number[] }[] };
    const alone = (await postJson(`${t.url}/v1/chat/completions`, { ...body, n: 1, seed: 22 })).json as unknown as typeof whole;
    expect(whole.prompt_token_ids).toEqual(alone.prompt_token_ids);
    expect(whole.choices[1]!.token_ids).toEqual(alone.choices[0]!.token_ids);
    const events = (await stream("chat/completions", body)) as unknown as { choices: { index: number; token_ids?: number[] }[] }[];
    const ids = new Map<number, number[]>();
    for (const e of events) for (const c of e.choices) ids.set(c.index, [...(ids.get(c.index) ?? []), ...(c.token_ids ?? [])]);
    expect([ids.get(0), ids.get(1)]).toEqual(whole.choices.map((c) => c.token_ids));
  });

  it("completions: n choices in the legacy shape, each with its own logprobs", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: MODEL, prompt: "The sky is", max_tokens: 6, temperature: 1, seed: 3, n: 2, logprobs: 1 });
    expect(r.status).toBe(200);
    const choices = (r.json as unknown as { choices: { index: number; text: string; logprobs: { tokens: string[] } }[] }).choices;
    expect(choices.map((c) => c.index)).toEqual([0, 1]);
    for (const c of choices) expect(c.logprobs.tokens.join("")).toBe(c.text);
  });

  it("a grammar per choice: n: 3 sampled json_schema answers are each valid; forced tool calls, one per choice", async () => {
    const schema = { type: "object", properties: { n: { type: "integer", minimum: 0, maximum: 9 }, ok: { type: "boolean" } }, required: ["n", "ok"] };
    const r = await chat({ temperature: 1, seed: 11, n: 3, max_tokens: 60, response_format: { type: "json_schema", json_schema: { name: "v", schema } } });
    expect(r.choices).toHaveLength(3);
    for (const c of r.choices) expect(validateJsonSchema({}, schema, JSON.parse(c.message.content!)), c.message.content!).toEqual([]);
    const tool = {
      type: "function",
      function: { name: "pick", parameters: { type: "object", properties: { x: { type: "integer", minimum: 1, maximum: 5 } }, required: ["x"] } },
    };
    const calls = await chat({ temperature: 1, seed: 4, n: 2, max_tokens: 60, tools: [tool], tool_choice: "required", parallel_tool_calls: false });
    for (const c of calls.choices) {
      expect(c.finish_reason).toBe("tool_calls");
      expect(c.message.tool_calls).toHaveLength(1);
      expect(validateJsonSchema({}, tool.function.parameters, JSON.parse(c.message.tool_calls![0]!.function.arguments))).toEqual([]);
    }
  });
});

describe("cross-engine: the same weights give the same logprobs on transformers, node-llama-cpp and onnxruntime", () => {
  it(`greedy tokens' logprobs agree (onnxruntime within ${TOLERANCE["llm-onnx"]}, node-llama-cpp within ${TOLERANCE["llm-llamacpp"]})`, async () => {
    const lps = async (model: string) => (await chat({ temperature: 0, logprobs: true, top_logprobs: 2, max_tokens: 16 }, model)).choices[0]!.logprobs!.content;
    const ref = await lps(MODEL);
    for (const [model, tolerance] of Object.entries(TOLERANCE)) {
      const other = await lps(model);
      expect(other.map((e) => e.token)).toEqual(ref.map((e) => e.token));
      const diffs = ref.flatMap((e, i) => [Math.abs(e.logprob - other[i]!.logprob), Math.abs(e.top_logprobs[1]!.logprob - other[i]!.top_logprobs[1]!.logprob)]);
      if (process.env["LOGPROBS_REPORT"]) console.log(`max |Δ logprob| transformers vs ${model}: ${Math.max(...diffs)} over ${ref.length} tokens`);
      expect(Math.max(...diffs)).toBeLessThan(tolerance);
    }
  });
});
