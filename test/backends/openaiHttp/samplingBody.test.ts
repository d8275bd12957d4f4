// The bodies llama-server and upstream servers get: the samplers a request sets, and for llama-server every
// sampler explicit (its defaults, top_k 40, top_p 0.95, min_p 0.05, are not OpenAI's) with a 32-bit seed.
import { describe, expect, it } from "vitest";
import { llamaServerSampling } from "../../../src/backends/llamaServer/LlamaServerBackend.js";
import { OpenAIUpstream } from "../../../src/backends/openaiHttp/OpenAIUpstream.js";
import type { CompletionRequest, EmbedRequest, SamplingParams } from "../../../src/core/types.js";

const SSE = 'data: {"choices":[{"index":0,"text":"x","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';

function capture(answer: string = SSE) {
  const bodies: Record<string, unknown>[] = [];
  const upstream = new OpenAIUpstream({
    name: "fake",
    baseUrl: "http://fake/v1",
    connectTimeoutMs: 1000,
    firstByteTimeoutMs: 1000,
    fetch: (_url, init) => {
      bodies.push(JSON.parse(init?.body as string) as Record<string, unknown>);
      return Promise.resolve(new Response(answer, { status: 200, headers: { "content-type": "text/event-stream" } }));
    },
  });
  return { upstream, bodies };
}

const request = (sampling: Partial<SamplingParams>): CompletionRequest => ({
  model: "m",
  prompt: "Hi",
  echo: false,
  n: 1,
  logprobs: null,
  returnTokenIds: false,
  responseFormat: { type: "text" },
  sampling: { maxTokens: 2, temperature: 0.7, topP: undefined, seed: 5, presencePenalty: 0, frequencyPenalty: 0, stop: [], ...sampling },
});

async function sent(r: CompletionRequest): Promise<Record<string, unknown>> {
  const { upstream, bodies } = capture();
  for await (const _ of upstream.complete(r, "m", new AbortController().signal)) void _;
  return bodies[0]!;
}

describe("sampling in request bodies", () => {
  it("upstream: the samplers the request sets, the repeat penalty in both spellings, nothing else", async () => {
    const body = await sent(request({ topK: 3, minP: 0.05, repeatPenalty: 1.3 }));
    expect(body).toMatchObject({ temperature: 0.7, seed: 5, top_k: 3, min_p: 0.05, repeat_penalty: 1.3, repetition_penalty: 1.3 });
    const plain = await sent(request({}));
    for (const key of ["top_k", "min_p", "repeat_penalty", "repetition_penalty", "top_p"]) expect(plain).not.toHaveProperty(key);
  });

  it("llama-server: every sampler explicit, OpenAI's neutral values where the request sets none", async () => {
    const body = await sent(llamaServerSampling(request({})));
    expect(body).toMatchObject({ top_p: 1, top_k: 0, min_p: 0, repeat_penalty: 1, seed: 5 });
    const set = await sent(llamaServerSampling(request({ topK: 1, minP: 0.2, repeatPenalty: 1.5, topP: 0.9 })));
    expect(set).toMatchObject({ top_p: 0.9, top_k: 1, min_p: 0.2, repeat_penalty: 1.5 });
  });

  it("llama-server: seeds are folded to 32 bits, never to the one llama.cpp reads as 'random'", async () => {
    expect((await sent(llamaServerSampling(request({ seed: -1 })))).seed).toBe(0xffff_fffe); // never 2^32 - 1
    expect((await sent(llamaServerSampling(request({ seed: 2 ** 32 + 7 })))).seed).toBe(7);
    expect((await sent(llamaServerSampling(request({ seed: -2 })))).seed).toBe(0xffff_fffe);
  });

  it("embeddings: token ids pass through in the shape the client sent", async () => {
    const answer = JSON.stringify({ data: [{ index: 0, embedding: [1] }], usage: { prompt_tokens: 3 } });
    const { upstream, bodies } = capture(answer);
    const flat: EmbedRequest = { model: "m", input: [[1, 2, 3]], flatTokenInput: true };
    await upstream.embed(flat, "m", new AbortController().signal);
    expect(bodies[0]!.input).toEqual([1, 2, 3]);
    await upstream.embed({ model: "m", input: [[1, 2]] }, "m", new AbortController().signal);
    expect(bodies[1]!.input).toEqual([[1, 2]]);
  });
});
