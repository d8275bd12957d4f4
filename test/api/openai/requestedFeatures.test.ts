import { describe, expect, it } from "vitest";
import { chatCompletionBodySchema } from "../../../src/api/openai/chatCompletionSchema.js";
import { completionBodySchema } from "../../../src/api/openai/completionSchema.js";
import { embeddingBodySchema } from "../../../src/api/openai/embeddingSchema.js";
import { parseBody } from "../../../src/api/openai/parseBody.js";
import { assertTranslated, chatFeatures, completionFeatures, embeddingFeatures } from "../../../src/api/openai/requestedFeatures.js";
import { UnsupportedParameterError } from "../../../src/core/errors.js";

const chat = (body: object) => chatFeatures(parseBody(chatCompletionBodySchema, { model: "m", messages: [{ role: "user", content: "hi" }], ...body }));
const completion = (body: object) => completionFeatures(parseBody(completionBodySchema, { model: "m", prompt: "a", ...body }));

describe("requestedFeatures", () => {
  it("asks for nothing with defaults and harmless spellings", () => {
    expect(
      chat({
        n: 1,
        logprobs: false,
        top_logprobs: 0,
        response_format: { type: "text" },
        tools: [],
        tool_choice: "auto",
        functions: [],
        function_call: "none",
        logit_bias: {},
      }),
    ).toEqual([]);
    expect(completion({ best_of: 1, suffix: "" })).toEqual([]);
    // logprobs 0 still asks for the chosen tokens' logprobs.
    expect(completion({ logprobs: 0 })).toEqual([{ capability: "logprobs", param: "logprobs" }]);
    expect(embeddingFeatures(parseBody(embeddingBodySchema, { model: "e", input: "x" }))).toEqual([]);
  });

  it.each([
    [{ n: 2 }, "multipleChoices", "n"],
    [{ logprobs: true }, "logprobs", "logprobs"],
    [{ top_logprobs: 2 }, "logprobs", "top_logprobs"],
    [{ logit_bias: { "5": 1 } }, "logitBias", "logit_bias"],
    [{ response_format: { type: "json_object" } }, "jsonObject", "response_format"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } } }, "jsonSchema", "response_format"],
    [{ tools: [{ type: "function", function: { name: "f" } }] }, "tools", "tools"],
    [{ tool_choice: "required" }, "tools", "tool_choice"],
    [{ messages: [{ role: "tool", content: "x", tool_call_id: "1" }] }, "tools", "messages[0].role"],
    [
      {
        messages: [
          { role: "user", content: "q" },
          { role: "assistant", content: null, tool_calls: [{ id: "1", type: "function", function: { name: "f", arguments: "{}" } }] },
        ],
      },
      "tools",
      "messages[1].tool_calls",
    ],
    [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }, "images", "messages[0].content[0]"],
    [
      {
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "input_audio", input_audio: {} },
            ],
          },
        ],
      },
      "audio",
      "messages[0].content[1]",
    ],
    [{ messages: [{ role: "user", content: [{ type: "file", file: {} }] }] }, "files", "messages[0].content[0]"],
    [{ modalities: ["text", "audio"] }, "audio", "modalities"],
    [{ audio: { voice: "x" } }, "audio", "audio"],
    [{ prediction: { type: "content", content: "x" } }, "prediction", "prediction"],
    [{ reasoning_effort: "low" }, "reasoning", "reasoning_effort"],
    [{ return_token_ids: true }, "tokenIds", "return_token_ids"],
  ])("chat %j asks for %s (param %s)", (body, capability, param) => {
    expect(chat(body)).toContainEqual({ capability, param });
  });

  it("refuses chat-only features on completions instead of dropping them", () => {
    expect(() => completion({ tools: [{ type: "function", function: { name: "f" } }] })).toThrow(/'tools' applies to \/v1\/chat\/completions only/);
    expect(() => completion({ response_format: { type: "json_object" } })).toThrow(/'response_format' applies to/);
    expect(completion({ tools: [], tool_choice: "none", response_format: { type: "text" } })).toEqual([]);
  });

  it("maps completion-only parameters", () => {
    expect(completion({ best_of: 3 })).toEqual([{ capability: "multipleChoices", param: "best_of" }]);
    expect(completion({ suffix: "end" })).toEqual([{ capability: "suffix", param: "suffix" }]);
    expect(completion({ logprobs: 2 })).toEqual([{ capability: "logprobs", param: "logprobs" }]);
    expect(embeddingFeatures(parseBody(embeddingBodySchema, { model: "e", input: "x", dimensions: 8 }))).toEqual([
      { capability: "embeddingDimensions", param: "dimensions" },
    ]);
  });

  it("refuses the deprecated function-calling fields and unknown content part types by name", () => {
    expect(() => chat({ functions: [{ name: "f" }] })).toThrow(/'functions' is the deprecated form of 'tools'/);
    expect(() => chat({ function_call: { name: "f" } })).toThrow(/'function_call' is the deprecated form/);
    expect(() => chat({ messages: [{ role: "user", content: [{ type: "hologram" }] }] })).toThrow(UnsupportedParameterError);
  });

  it("refuses, never drops, a feature the API layer does not translate yet", () => {
    expect(() => assertTranslated([{ capability: "tokenIds", param: "return_token_ids" }])).not.toThrow();
    expect(() => assertTranslated([{ capability: "tools", param: "tools" }])).not.toThrow();
    expect(() => assertTranslated([{ capability: "logprobs", param: "logprobs" }])).not.toThrow();
    expect(() => assertTranslated([{ capability: "logitBias", param: "logit_bias" }])).toThrow(/Parameter 'logit_bias'/);
  });
});
