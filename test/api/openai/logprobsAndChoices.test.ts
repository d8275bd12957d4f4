// The wire shapes of logprobs (chat and legacy completions, whole and streamed), several choices interleaved, and
// the upstream parser that reads both shapes back.
import { describe, expect, it } from "vitest";
import { chatFormatter, completionFormatter } from "../../../src/api/openai/responseFormatters.js";
import { runChoices } from "../../../src/backends/generation/runChoices.js";
import { OpenAIUpstream } from "../../../src/backends/openaiHttp/OpenAIUpstream.js";
import type { CompletionRequest, GenerationChunk, LogprobEntry } from "../../../src/core/types.js";

const entry = (token: string, logprob: number, top: [string, number][]): LogprobEntry => ({
  token,
  logprob,
  bytes: [...Buffer.from(token)],
  top: top.map(([t, lp]) => ({ token: t, logprob: lp, bytes: [...Buffer.from(t)] })),
});
const HE = entry("He", -0.1, [
  ["He", -0.1],
  ["Hi", -2.5],
]);
const LLO = entry("llo", -0.5, [
  ["llo", -0.5],
  ["y", -1],
]);

describe("logprobs wire shapes", () => {
  it("chat, whole: choices[].logprobs.content with top_logprobs", () => {
    const f = chatFormatter({ model: "m", includeUsage: false, logprobs: true });
    const body = f.whole(
      [
        { index: 0, text: "Hello", finishReason: "length", toolCalls: [], logprobs: [HE, LLO] },
        { index: 1, text: "", finishReason: "stop", toolCalls: [] },
      ],
      { promptTokens: 1, completionTokens: 2 },
    ) as { choices: { logprobs: unknown }[] };
    expect(body.choices[0]!.logprobs).toEqual({
      content: [
        {
          token: "He",
          logprob: -0.1,
          bytes: [72, 101],
          top_logprobs: [
            { token: "He", logprob: -0.1, bytes: [72, 101] },
            { token: "Hi", logprob: -2.5, bytes: [72, 105] },
          ],
        },
        {
          token: "llo",
          logprob: -0.5,
          bytes: [108, 108, 111],
          top_logprobs: [
            { token: "llo", logprob: -0.5, bytes: [108, 108, 111] },
            { token: "y", logprob: -1, bytes: [121] },
          ],
        },
      ],
      refusal: null,
    });
    // A choice without tokens still answers the request's logprobs, empty.
    expect(body.choices[1]!.logprobs).toEqual({ content: [], refusal: null });
    const off = chatFormatter({ model: "m", includeUsage: false }).whole([{ index: 0, text: "x", finishReason: "stop", toolCalls: [] }], {
      promptTokens: 1,
      completionTokens: 1,
    });
    expect((off as { choices: { logprobs: unknown }[] }).choices[0]!.logprobs).toBeNull();
  });

  it("chat, streamed: each chunk carries its own tokens", () => {
    const f = chatFormatter({ model: "m", includeUsage: false, logprobs: true });
    const one = JSON.parse(f.text(0, "He", undefined, [HE])) as { choices: { delta: object; logprobs: { content: { token: string }[] } }[] };
    expect(one.choices[0]!.delta).toEqual({ content: "He" });
    expect(one.choices[0]!.logprobs.content.map((e) => e.token)).toEqual(["He"]);
    const plain = JSON.parse(f.text(0, "x")) as { choices: { logprobs: unknown }[] };
    expect(plain.choices[0]!.logprobs).toBeNull();
  });

  it("completions: tokens, token_logprobs, top_logprobs (with the chosen token) and text_offset, whole and streamed", () => {
    const f = completionFormatter({ model: "m", includeUsage: false, logprobs: true });
    const whole = f.whole([{ index: 0, text: "Hello", finishReason: "length", toolCalls: [], logprobs: [HE, LLO], textOffsets: [0, 2] }], {
      promptTokens: 1,
      completionTokens: 2,
    }) as { choices: { logprobs: unknown }[] };
    expect(whole.choices[0]!.logprobs).toEqual({
      tokens: ["He", "llo"],
      token_logprobs: [-0.1, -0.5],
      top_logprobs: [
        { He: -0.1, Hi: -2.5 },
        { llo: -0.5, y: -1 },
      ],
      text_offset: [0, 2],
    });
    const s = completionFormatter({ model: "m", includeUsage: false, logprobs: true });
    const a = JSON.parse(s.text(0, "He", undefined, [HE])) as { choices: { logprobs: { text_offset: number[] } }[] };
    const b = JSON.parse(s.text(0, "llo", undefined, [LLO])) as { choices: { logprobs: { text_offset: number[]; top_logprobs: object[] } }[] };
    expect(a.choices[0]!.logprobs.text_offset).toEqual([0]);
    expect(b.choices[0]!.logprobs.text_offset).toEqual([2]);
    // logprobs 0: only the chosen token in each top_logprobs object.
    const zero = completionFormatter({ model: "m", includeUsage: false, logprobs: true });
    const z = JSON.parse(zero.text(0, "He", undefined, [{ ...HE, top: [] }])) as { choices: { logprobs: { top_logprobs: object[] } }[] };
    expect(z.choices[0]!.logprobs.top_logprobs).toEqual([{ He: -0.1 }]);
  });
});

const request = (n: number, seed = 10): CompletionRequest => ({
  model: "m",
  prompt: "p",
  echo: false,
  n,
  logprobs: null,
  returnTokenIds: false,
  responseFormat: { type: "text" },
  sampling: { maxTokens: 3, temperature: 1, topP: undefined, seed, presencePenalty: 0, frequencyPenalty: 0, stop: [] },
});

describe("runChoices", () => {
  it("interleaves the choices, each in order with its own index and seed; one usage, the prompt counted once", async () => {
    const seeds: (number | undefined)[] = [];
    const out: GenerationChunk[] = [];
    for await (const c of runChoices(request(3), new AbortController().signal, async function* (choice) {
      seeds.push(choice.sampling.seed);
      expect(choice.n).toBe(1);
      for (let k = 0; k < 3; k++) {
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        yield { type: "text", index: 0, text: `${choice.sampling.seed}:${k} ` };
      }
      yield { type: "finish", index: 0, reason: "length" };
      yield { type: "usage", usage: { promptTokens: 4, completionTokens: 3 } };
    }))
      out.push(c);
    expect(seeds).toEqual([10, 11, 12]);
    for (const i of [0, 1, 2]) {
      const mine = out.filter((c) => c.type !== "usage" && c.index === i);
      expect(mine.map((c) => (c.type === "text" ? c.text : c.type))).toEqual([`${10 + i}:0 `, `${10 + i}:1 `, `${10 + i}:2 `, "finish"]);
    }
    expect(out.filter((c) => c.type === "usage")).toEqual([{ type: "usage", usage: { promptTokens: 4, completionTokens: 9 } }]);
  });

  it("a failing choice ends the others and the error is thrown", async () => {
    const aborted: boolean[] = [];
    const run = runChoices(request(2), new AbortController().signal, async function* (choice, signal) {
      if (choice.sampling.seed === 11) throw new Error("boom");
      try {
        for (;;) {
          await new Promise((r) => setTimeout(r, 1));
          if (signal.aborted) return;
          yield { type: "text", index: 0, text: "x" };
        }
      } finally {
        aborted.push(signal.aborted);
      }
    });
    await expect(async () => {
      for await (const _ of run) void _;
    }).rejects.toThrow("boom");
    expect(aborted).toEqual([true]);
  });
});

describe("upstream logprobs", () => {
  async function parse(sse: string, r: CompletionRequest) {
    const bodies: Record<string, unknown>[] = [];
    const upstream = new OpenAIUpstream({
      name: "fake",
      baseUrl: "http://fake/v1",
      connectTimeoutMs: 1000,
      firstByteTimeoutMs: 1000,
      fetch: (_url, init) => {
        bodies.push(JSON.parse(init?.body as string) as Record<string, unknown>);
        return Promise.resolve(new Response(sse, { status: 200, headers: { "content-type": "text/event-stream" } }));
      },
    });
    const chunks: GenerationChunk[] = [];
    for await (const c of upstream.complete(r, "m", new AbortController().signal)) chunks.push(c);
    return { body: bodies[0]!, chunks };
  }

  it("asks for at least one alternative and n, and reads llama-server's content form and the legacy form", async () => {
    const content = {
      content: [
        {
          id: 5,
          token: "He",
          logprob: -0.1,
          bytes: [72, 101],
          top_logprobs: [
            { id: 5, token: "He", logprob: -0.1, bytes: [72, 101] },
            { id: 6, token: "Hi", logprob: -2.5, bytes: [72, 105] },
          ],
        },
      ],
    };
    const legacy = { tokens: ["llo"], token_logprobs: [-0.5], top_logprobs: [{ y: -1, llo: -0.5 }], text_offset: [2] };
    const sse = [
      { choices: [{ index: 0, text: "He", logprobs: content }] },
      { choices: [{ index: 1, text: "llo", logprobs: legacy, finish_reason: "length" }] },
      { choices: [{ index: 0, text: "", finish_reason: "length" }] },
    ]
      .map((e) => `data: ${JSON.stringify(e)}\n\n`)
      .join("");
    const { body, chunks } = await parse(`${sse}data: [DONE]\n\n`, { ...request(2), logprobs: 0 });
    expect(body).toMatchObject({ n: 2, logprobs: 1 });
    const lps = chunks.filter((c) => c.type === "logprobs");
    expect(lps).toEqual([
      { type: "logprobs", index: 0, entries: [{ token: "He", logprob: -0.1, bytes: [72, 101], top: [] }] },
      { type: "logprobs", index: 1, entries: [{ token: "llo", logprob: -0.5, bytes: [108, 108, 111], top: [] }] },
    ]);
    // Logprobs come before the text they belong to.
    expect(chunks.findIndex((c) => c.type === "logprobs")).toBeLessThan(chunks.findIndex((c) => c.type === "text"));
    const two = await parse(`${sse}data: [DONE]\n\n`, { ...request(1), logprobs: 2 });
    expect(two.body["n"]).toBeUndefined();
    expect(two.chunks.filter((c) => c.type === "logprobs").map((c) => (c.type === "logprobs" ? c.entries[0]!.top.map((x) => x.token) : []))).toEqual([
      ["He", "Hi"],
      ["llo", "y"],
    ]);
  });
});
