import { describe, expect, it } from "vitest";
import { chatCompletionBodySchema, toChatRequest } from "../../../src/api/openai/chatCompletionSchema.js";
import { completionBodySchema, toCompletionRequests } from "../../../src/api/openai/completionSchema.js";
import { embeddingBodySchema, toEmbedRequest } from "../../../src/api/openai/embeddingSchema.js";
import { parseBody } from "../../../src/api/openai/parseBody.js";
import { InvalidRequestError } from "../../../src/core/errors.js";

const chat = (body: object) => toChatRequest(parseBody(chatCompletionBodySchema, { model: "m", messages: [{ role: "user", content: "hi" }], ...body }));

function paramOf(fn: () => unknown): string | null {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRequestError);
    return (e as InvalidRequestError).param;
  }
  throw new Error("expected an error");
}

describe("chat completion body", () => {
  it("converts messages and sampling", () => {
    const r = chat({
      messages: [
        { role: "developer", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
          ],
        },
        { role: "assistant", content: null },
      ],
      max_completion_tokens: 7,
      max_tokens: 9,
      temperature: 0,
      top_p: 0.5,
      seed: 3,
      stop: "x",
      presence_penalty: 0.1,
      frequency_penalty: -0.1,
      user: "u",
      metadata: { a: 1 },
      some_future_field: true,
    });
    expect(r.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "ab" },
      { role: "assistant", content: "" },
    ]);
    expect(r.sampling).toEqual({ maxTokens: 7, temperature: 0, topP: 0.5, seed: 3, presencePenalty: 0.1, frequencyPenalty: -0.1, stop: ["x"] });
  });

  it("defaults like OpenAI", () => {
    // No seed: a fresh random one per request (see samplerExtensions.test.ts).
    expect(chat({}).sampling).toEqual({
      maxTokens: undefined,
      temperature: 1,
      topP: undefined,
      seed: expect.any(Number),
      presencePenalty: 0,
      frequencyPenalty: 0,
      stop: [],
    });
  });

  it.each([
    [{ max_tokens: "5" }, "max_tokens"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ temperature: 3 }, "temperature"],
    [{ stop: [1] }, "stop[0]"],
    [{ messages: [] }, "messages"],
    [{ messages: [{ role: "user" }] }, "messages[0].content"],
    [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
    [{ model: "" }, "model"],
    [{ stream: "yes" }, "stream"],
  ])("rejects invalid %j naming %s", (body, param) => {
    expect(paramOf(() => chat(body))).toBe(param);
  });

  it.each([
    [{ top_logprobs: 3 }, "top_logprobs"],

    [{ logit_bias: { "1": 5 } }, "logit_bias"],
    [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }, "messages[0].content[0]"],
    [{ functions: [{ name: "f" }] }, "functions"],
    [{ messages: [{ role: "function", content: "x", name: "f" }] }, "messages[0].role"],
  ])("refuses unsupported %j naming %s", (body, param) => {
    expect(paramOf(() => chat(body))).toBe(param);
  });

  it("converts tools, the tool choice, tool calls in the history and tool results", () => {
    const weather = {
      type: "function",
      function: { name: "weather", description: "now", parameters: { type: "object", properties: { city: { type: "string" } } }, strict: true },
    };
    const r = chat({
      tools: [weather, { type: "function", function: { name: "time" } }],
      tool_choice: { type: "function", function: { name: "weather" } },
      parallel_tool_calls: false,
      messages: [
        { role: "user", content: "Weather in Oslo?" },
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } }] },
        { role: "tool", tool_call_id: "c1", content: "sunny" },
      ],
      response_format: { type: "json_schema", json_schema: { name: "answer", schema: { type: "object" }, strict: true } },
    });
    expect(r.tools).toEqual([
      { name: "weather", description: "now", parameters: weather.function.parameters, strict: true },
      { name: "time", parameters: { type: "object", properties: {} }, strict: false },
    ]);
    expect(r.toolChoice).toEqual({ type: "function", name: "weather" });
    expect(r.parallelToolCalls).toBe(false);
    expect(r.messages.slice(1)).toEqual([
      { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "weather", arguments: '{"city":"Oslo"}' }] },
      { role: "tool", content: "sunny", toolCallId: "c1" },
    ]);
    expect(r.responseFormat).toEqual({ type: "json_schema", name: "answer", schema: { type: "object" }, strict: true });
    expect(chat({}).toolChoice).toEqual({ type: "none" });
    expect(chat({ tools: [weather] }).toolChoice).toEqual({ type: "auto" });
  });

  it.each([
    [{ tool_choice: { type: "function", function: { name: "nope" } }, tools: [{ type: "function", function: { name: "f" } }] }, "tool_choice"],
    [{ tool_choice: "required" }, "tool_choice"],
    [
      {
        tools: [
          { type: "function", function: { name: "f" } },
          { type: "function", function: { name: "f" } },
        ],
      },
      "tools[1].function.name",
    ],
    [{ tools: [{ type: "function", function: { name: "bad name" } }] }, "tools[0].function.name"],
    [
      {
        messages: [
          { role: "user", content: "q" },
          { role: "tool", content: "x", tool_call_id: "never" },
        ],
      },
      "messages[1].tool_call_id",
    ],
    [{ response_format: { type: "yaml" } }, "response_format.type"],
  ])("refuses inconsistent tool input %j naming %s", (body, param) => {
    expect(paramOf(() => chat(body))).toBe(param);
  });

  it("accepts harmless defaults of unsupported features", () => {
    expect(() => chat({ n: 1, logprobs: false, response_format: { type: "text" }, tools: [], tool_choice: "none" })).not.toThrow();
  });

  it("requires a non-system message", () => {
    expect(paramOf(() => chat({ messages: [{ role: "system", content: "x" }] }))).toBe("messages");
  });

  it("rejects a body that is not an object", () => {
    expect(() => parseBody(chatCompletionBodySchema, [1])).toThrow(/JSON object/);
  });
});

describe("completion body", () => {
  it("makes one request per prompt", () => {
    const rs = toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: ["a", "b"], echo: true, max_tokens: 3 }));
    expect(rs.map((r) => [r.prompt, r.echo, r.sampling.maxTokens])).toEqual([
      ["a", true, 3],
      ["b", true, 3],
    ]);
  });
  it("refuses suffix, best_of > 1 and token-array prompts", () => {
    expect(paramOf(() => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", suffix: "z" })))).toBe("suffix");
    expect(paramOf(() => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", best_of: 2 })))).toBe("best_of");
    expect(paramOf(() => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", best_of: 3, n: 2 })))).toBe("best_of");
    expect(paramOf(() => parseBody(completionBodySchema, { model: "m", prompt: [1, 2] }))).toMatch(/^prompt/);
    expect(paramOf(() => parseBody(completionBodySchema, { model: "m", prompt: "a", logprobs: 6 }))).toBe("logprobs");
    expect(paramOf(() => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", logprobs: 2, echo: true })))).toBe("echo");
    expect(paramOf(() => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", top_logprobs: 2 })))).toBe("top_logprobs");
  });

  it("carries n, best_of = n and the logprobs count", () => {
    const [r] = toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", n: 3, best_of: 3, logprobs: 2 }));
    expect([r!.n, r!.logprobs]).toEqual([3, 2]);
    const [zero] = toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "a", logprobs: 0 }));
    expect(zero!.logprobs).toBe(0);
  });
});

describe("chat logprobs and n", () => {
  it("carries logprobs as the number of alternatives, and n", () => {
    expect(chat({}).logprobs).toBeNull();
    expect(chat({ logprobs: true }).logprobs).toBe(0);
    expect(chat({ logprobs: true, top_logprobs: 20, n: 16 })).toMatchObject({ logprobs: 20, n: 16 });
    expect(chat({ logprobs: false, top_logprobs: 0 }).logprobs).toBeNull();
  });
  it.each([
    [{ top_logprobs: 2 }, "top_logprobs"],
    [{ logprobs: false, top_logprobs: 2 }, "top_logprobs"],
    [{ logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    [{ logprobs: true, top_logprobs: -1 }, "top_logprobs"],
    [{ logprobs: 1 }, "logprobs"],
    [{ n: 17 }, "n"],
    [{ n: 0 }, "n"],
  ])("refuses %j naming %s", (body, param) => {
    expect(paramOf(() => chat(body))).toBe(param);
  });
});

describe("embedding body", () => {
  it("normalises input to a list", () => {
    expect(toEmbedRequest(parseBody(embeddingBodySchema, { model: "e", input: "x" })).input).toEqual(["x"]);
  });
  it.each([
    [{ input: "" }, "input"],
    [{ input: [] }, "input"],
    [{ input: ["a", ""] }, "input"],
    [{ input: "a", encoding_format: "hex" }, "encoding_format"],
  ])("rejects %j", (body, param) => {
    expect(paramOf(() => parseBody(embeddingBodySchema, { model: "e", ...body }))).toMatch(new RegExp(`^${param}`));
  });
  it("refuses dimensions", () => {
    expect(paramOf(() => toEmbedRequest(parseBody(embeddingBodySchema, { model: "e", input: "a", dimensions: 8 })))).toBe("dimensions");
  });
});
