import { describe, expect, it } from "vitest";
import type { ModelDescriptor } from "../../src/core/types.js";
import { estimateModelMemory } from "../../src/router/estimateModelMemory.js";

const model = (task: string, engine = "node-llama-cpp") =>
  ({ id: "m", path: "/m.gguf", task, engine, sizeBytes: 100_000_000, created: 0, detection: { contextLength: 4096 } }) as unknown as ModelDescriptor;

describe("estimateModelMemory", () => {
  const options = { contextSize: 2048, parallel: 4 };

  it("a generator: weights plus a KV cache per slot", () => {
    expect(estimateModelMemory(model("chat"), options)).toBe(105_000_000 + 2048 * 2048 * 4);
  });

  it("encoders (embeddings, rerank) keep no KV cache; upstream models take no local memory", () => {
    expect(estimateModelMemory(model("embeddings"), options)).toBe(105_000_000);
    expect(estimateModelMemory(model("rerank"), options)).toBe(105_000_000);
    expect(estimateModelMemory(model("chat", "upstream"), options)).toBe(0);
  });
});
