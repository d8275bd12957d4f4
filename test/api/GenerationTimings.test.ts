import { describe, expect, it } from "vitest";
import { GenerationTimer } from "../../src/api/GenerationTimings.js";

describe("GenerationTimer", () => {
  it("prompt time runs to the first generated output, predicted time from there to the last; counts are the usage", () => {
    let now = 1000;
    const timer = new GenerationTimer(() => now);
    now = 1010;
    timer.chunk({ type: "token_ids", index: 0, ids: [1, 2, 3], prompt: true }); // the prompt's ids are not output
    now = 1050;
    timer.chunk({ type: "text", index: 0, text: "a" });
    now = 1150;
    timer.chunk({ type: "text", index: 0, text: "b" });
    timer.chunk({ type: "finish", index: 0, reason: "length" });
    now = 1200;
    timer.chunk({ type: "usage", usage: { promptTokens: 10, completionTokens: 5 } }); // bookkeeping, not output
    expect(timer.timings({ promptTokens: 10, completionTokens: 5 })).toEqual({
      prompt_n: 10,
      prompt_ms: 50,
      prompt_per_second: 200,
      predicted_n: 5,
      predicted_ms: 100,
      predicted_per_second: 50,
    });
  });

  it("an answer with no output yet has zero times and zero rates, never NaN or Infinity", () => {
    const timer = new GenerationTimer(() => 5);
    expect(timer.timings({ promptTokens: 3, completionTokens: 0 })).toEqual({
      prompt_n: 3,
      prompt_ms: 0,
      prompt_per_second: 0,
      predicted_n: 0,
      predicted_ms: 0,
      predicted_per_second: 0,
    });
  });
});
