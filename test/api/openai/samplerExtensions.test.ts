import { describe, expect, it } from "vitest";
import { chatCompletionBodySchema, toChatRequest } from "../../../src/api/openai/chatCompletionSchema.js";
import { completionBodySchema, toCompletionRequests } from "../../../src/api/openai/completionSchema.js";
import { embeddingBodySchema, toEmbedRequest } from "../../../src/api/openai/embeddingSchema.js";
import { parseBody } from "../../../src/api/openai/parseBody.js";
import { REFUSED_EXTENSIONS } from "../../../src/api/openai/samplerExtensions.js";
import { InvalidRequestError } from "../../../src/core/errors.js";

const chat = (body: object) => toChatRequest(parseBody(chatCompletionBodySchema, { model: "m", messages: [{ role: "user", content: "hi" }], ...body }));
const complete = (body: object) => toCompletionRequests(parseBody(completionBodySchema, { model: "m", prompt: "hi", ...body }));
const embed = (input: unknown) => toEmbedRequest(parseBody(embeddingBodySchema, { model: "m", input }));

function errorOf(fn: () => unknown): InvalidRequestError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRequestError);
    return e as InvalidRequestError;
  }
  throw new Error("expected an error");
}

describe("seeds", () => {
  it("a request without a seed gets a fresh one, different per request, below 2^32 - 1", () => {
    const seeds = Array.from({ length: 20 }, () => chat({}).sampling.seed);
    for (const s of seeds) {
      expect(Number.isInteger(s)).toBe(true);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(0xffff_ffff);
    }
    expect(new Set(seeds).size).toBeGreaterThan(15);
  });

  it("a given seed is kept; completions get one too", () => {
    expect(chat({ seed: 7 }).sampling.seed).toBe(7);
    expect(chat({ seed: -3 }).sampling.seed).toBe(-3);
    expect(typeof complete({}).at(0)!.sampling.seed).toBe("number");
    expect(complete({ seed: 9 }).at(0)!.sampling.seed).toBe(9);
  });
});

describe("top_k, min_p, repeat_penalty", () => {
  it("are carried into the sampling parameters, on chat and completions", () => {
    expect(chat({ top_k: 5, min_p: 0.1, repeat_penalty: 1.3 }).sampling).toMatchObject({ topK: 5, minP: 0.1, repeatPenalty: 1.3 });
    expect(complete({ top_k: 2, repetition_penalty: 1.1 }).at(0)!.sampling).toMatchObject({ topK: 2, repeatPenalty: 1.1 });
  });

  it("neutral values ask for nothing", () => {
    const s = chat({ top_k: 0, min_p: 0, repeat_penalty: 1 }).sampling;
    expect(s.topK).toBeUndefined();
    expect(s.minP).toBeUndefined();
    expect(s.repeatPenalty).toBeUndefined();
  });

  it("both spellings of the repeat penalty: the same value is fine, different values are a 400", () => {
    expect(chat({ repeat_penalty: 1.2, repetition_penalty: 1.2 }).sampling.repeatPenalty).toBe(1.2);
    const e = errorOf(() => chat({ repeat_penalty: 1.2, repetition_penalty: 1.1 }));
    expect(e.param).toBe("repetition_penalty");
  });

  it.each([
    [{ top_k: -1 }, "top_k"],
    [{ top_k: 1.5 }, "top_k"],
    [{ top_k: "3" }, "top_k"],
    [{ min_p: 1.5 }, "min_p"],
    [{ min_p: -0.1 }, "min_p"],
    [{ repeat_penalty: 0 }, "repeat_penalty"],
    [{ repeat_penalty: 11 }, "repeat_penalty"],
    [{ repetition_penalty: -1 }, "repetition_penalty"],
  ])("%j is a 400 naming %s", (body, param) => {
    const e = errorOf(() => chat(body));
    expect(e.param).toBe(param);
    expect(e.code).toBe("invalid_value");
  });
});

describe("other servers' extensions", () => {
  it.each([
    ["grammar", "root ::= [a-z]+"],
    ["guided_json", { type: "object" }],
    ["guided_regex", "[0-9]+"],
    ["guided_choice", ["a", "b"]],
    ["guided_grammar", "root ::= x"],
    ["chat_template_kwargs", { enable_thinking: false }],
    ["ignore_eos", true],
    ["cache_prompt", false],
    ["mirostat", 2],
    ["typical_p", 0.5],
    ["tfs_z", 0.9],
    ["n_probs", 3],
    ["dry_multiplier", 0.8],
  ])("%s is refused by name (400 unsupported_parameter)", (name, value) => {
    for (const run of [() => chat({ [name]: value }), () => complete({ [name]: value })]) {
      const e = errorOf(run);
      expect(e.param).toBe(name);
      expect(e.code).toBe("unsupported_parameter");
      expect(e.status).toBe(400);
      expect(e.message).toContain(name);
    }
  });

  it("neutral values and null are accepted", () => {
    expect(() => chat({ ignore_eos: false, cache_prompt: true, mirostat: 0, typical_p: 1, tfs_z: 1, n_probs: 0, dry_multiplier: 0, grammar: null })).not.toThrow();
    expect(() => chat({ chat_template_kwargs: {}, guided_choice: [] })).not.toThrow();
  });

  it("metadata and unknown fields stay accepted", () => {
    expect(() => chat({ user: "u", metadata: { a: 1 }, store: false, service_tier: "auto", some_langchain_extra: 1 })).not.toThrow();
  });

  it("every refused extension is refused for a non-neutral value", () => {
    for (const name of Object.keys(REFUSED_EXTENSIONS)) {
      const e = errorOf(() => chat({ [name]: { something: 1 } }));
      expect(e.param).toBe(name);
    }
  });
});

describe("embedding inputs", () => {
  it("a string, strings, token ids, lists of token ids", () => {
    expect(embed("a")).toEqual({ model: "m", input: ["a"] });
    expect(embed(["a", "b"])).toEqual({ model: "m", input: ["a", "b"] });
    expect(embed([1, 2, 3])).toEqual({ model: "m", input: [[1, 2, 3]], flatTokenInput: true });
    expect(embed([[1, 2], [3]])).toEqual({ model: "m", input: [[1, 2], [3]] });
  });

  it.each([
    [[-1, 2], "input[0]"],
    [[[1], [2, 1.5]], "input[1][1]"],
    [[[1], []], "input[1]"],
    [[], "input"],
    [["a", 1], "input[1]"],
  ])("%j is a 400 (%s)", (input, param) => {
    const e = errorOf(() => embed(input));
    expect(e.param).toBe(param);
  });
});
