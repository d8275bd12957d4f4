import { describe, expect, it } from "vitest";
import { chooseExecutionProviders } from "../../../src/backends/onnx/chooseExecutionProviders.js";
import { createRandom } from "../../../src/backends/onnx/createRandom.js";
import { describeDecoderGraph, UnsupportedGraphError } from "../../../src/backends/onnx/describeDecoderGraph.js";
import { float16ToFloat32 } from "../../../src/backends/onnx/float16ToFloat32.js";
import { l2Normalize, poolTokens } from "../../../src/backends/onnx/poolTokens.js";
import { argmax, sampleToken } from "../../../src/backends/onnx/sampleToken.js";

describe("createRandom", () => {
  it("repeats for a seed, differs between seeds, stays in [0, 1)", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const c = createRandom(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    // 64-bit seeds (OpenAI allows them) are folded, not truncated to the same value.
    expect(createRandom(2 ** 40 + 1)()).not.toBe(createRandom(1)());
  });
});

describe("sampleToken", () => {
  const logits = Float32Array.from([1, 3, 2, 3, -1]);

  it("temperature 0 is argmax, ties to the lowest id", () => {
    expect(sampleToken(logits, { temperature: 0 }, () => 0.99)).toBe(1);
    expect(argmax([0, 0, 0])).toBe(0);
  });

  it("samples the softmax distribution at the temperature", () => {
    const random = createRandom(1);
    const counts = [0, 0, 0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1 }, random)]!++;
    const z = [1, 3, 2, 3, -1].map(Math.exp);
    const total = z.reduce((a, b) => a + b, 0);
    counts.forEach((c, i) => expect(c / n).toBeCloseTo(z[i]! / total, 1));
  });

  it("top_p keeps the smallest set of most likely tokens that reaches p", () => {
    // probabilities ∝ e^logit: tokens 1 and 3 hold 0.397 each, token 2 0.146, token 0 0.053.
    const seen = new Set<number>();
    const random = createRandom(5);
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.75 }, random));
    expect([...seen].sort()).toEqual([1, 3]);
    const wider = new Set<number>();
    for (let i = 0; i < 2000; i++) wider.add(sampleToken(logits, { temperature: 1, topP: 0.8 }, random));
    expect([...wider].sort()).toEqual([1, 2, 3]);
    const tiny = new Set<number>();
    for (let i = 0; i < 200; i++) tiny.add(sampleToken(logits, { temperature: 1, topP: 0.01 }, random));
    expect([...tiny]).toEqual([1]);
  });

  it("top_p is exact on a large, flat vocabulary", () => {
    const flat = new Float32Array(50_000).fill(0);
    flat[123] = 15; // e^15 / (e^15 + 49_999) = 98.5% of the mass
    const random = createRandom(9);
    for (let i = 0; i < 100; i++) expect(sampleToken(flat, { temperature: 1, topP: 0.9 }, random)).toBe(123);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sampleToken(flat, { temperature: 1, topP: 0.99 }, random));
    expect(seen.size).toBeGreaterThan(1);
  });

  it("presence and frequency penalties lower tokens already generated", () => {
    const counts = new Map([[1, 2]]);
    expect(sampleToken(logits, { temperature: 0, presencePenalty: 0.5 }, Math.random, counts)).toBe(3);
    expect(sampleToken(Float32Array.from([5, 4]), { temperature: 0, frequencyPenalty: 0.6 }, Math.random, new Map([[0, 2]]))).toBe(1);
    expect(sampleToken(Float32Array.from([5, 4]), { temperature: 0, frequencyPenalty: 0.4 }, Math.random, new Map([[0, 2]]))).toBe(0);
    expect(logits[1]).toBe(3); // the caller's logits are untouched
  });
});

describe("describeDecoderGraph", () => {
  const kv = (layer: number, kind: string) => ({ name: `past_key_values.${layer}.${kind}`, type: "float32", shape: ["batch_size", 2, "past_sequence_length", 16] });
  const optimumInputs = [
    { name: "input_ids", type: "int64", shape: ["batch_size", "sequence_length"] },
    { name: "attention_mask", type: "int64", shape: ["batch_size", "total_sequence_length"] },
    { name: "position_ids", type: "int64", shape: ["batch_size", "sequence_length"] },
    kv(0, "key"),
    kv(0, "value"),
    kv(1, "key"),
    kv(1, "value"),
  ];
  const optimumOutputs = ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"].map((name) => ({ name }));

  it("maps optimum's past_key_values.N to present.N, with the cache shape from the graph", () => {
    const g = describeDecoderGraph(optimumInputs, optimumOutputs, { heads: null, headDim: null });
    expect(g).toMatchObject({ inputIds: "input_ids", attentionMask: "attention_mask", positionIds: "position_ids", useCacheBranch: null, logits: "logits" });
    expect(g.cache.map((c) => [c.input, c.output, c.heads, c.headDim])).toEqual([
      ["past_key_values.0.key", "present.0.key", 2, 16],
      ["past_key_values.0.value", "present.0.value", 2, 16],
      ["past_key_values.1.key", "present.1.key", 2, 16],
      ["past_key_values.1.value", "present.1.value", 2, 16],
    ]);
  });

  it("handles merged decoders (use_cache_branch), int32 ids, symbolic head dims from config, genai names", () => {
    const inputs = [
      { name: "input_ids", type: "int32", shape: ["b", "s"] },
      { name: "attention_mask", type: "int32", shape: ["b", "t"] },
      { name: "use_cache_branch", type: "bool", shape: [1] },
      { name: "past_key_values.0.key", type: "float16", shape: ["b", "h", "p", "d"] },
      { name: "past_key_values.0.value", type: "float16", shape: ["b", "h", "p", "d"] },
    ];
    const g = describeDecoderGraph(inputs, [{ name: "logits" }, { name: "present.0.key" }, { name: "present.0.value" }], { heads: 8, headDim: 64 });
    expect(g.intType).toEqual({ input_ids: "int32", attention_mask: "int32" });
    expect(g.useCacheBranch).toBe("use_cache_branch");
    expect(g.cache[0]).toMatchObject({ type: "float16", heads: 8, headDim: 64 });

    const genai = describeDecoderGraph(
      [
        { name: "input_ids", type: "int64" },
        { name: "past.0.k", type: "float32", shape: [1, 4, "p", 8] },
        { name: "past.0.v", type: "float32", shape: [1, 4, "p", 8] },
      ],
      [{ name: "logits" }, { name: "kv.0.k" }, { name: "kv.0.v" }],
      { heads: null, headDim: null },
      { pastKey: "past.%d.k", pastValue: "past.%d.v", presentKey: "kv.%d.k", presentValue: "kv.%d.v" },
    );
    expect(genai.cache.map((c) => c.output)).toEqual(["kv.0.k", "kv.0.v"]);
  });

  it("refuses graphs it cannot drive, saying which input", () => {
    expect(() => describeDecoderGraph([{ name: "pixel_values" }], [{ name: "logits" }], { heads: 1, headDim: 1 })).toThrow(UnsupportedGraphError);
    expect(() => describeDecoderGraph([...optimumInputs, { name: "mystery" }], optimumOutputs, { heads: null, headDim: null })).toThrow(/'mystery'/);
    expect(() => describeDecoderGraph(optimumInputs, [{ name: "logits" }], { heads: null, headDim: null })).toThrow(/present\.0\.key/);
  });

  it("a graph without a cache is a valid (slow) decoder", () => {
    const g = describeDecoderGraph([{ name: "input_ids", type: "int64" }], [{ name: "logits" }], { heads: null, headDim: null });
    expect(g.cache).toEqual([]);
  });
});

describe("chooseExecutionProviders", () => {
  const available = [
    { name: "cpu", bundled: true },
    { name: "webgpu", bundled: true },
    { name: "cuda", bundled: false },
    { name: "tensorrt", bundled: false },
  ];

  it("CPU by default", () => {
    expect(chooseExecutionProviders(["cpu"], undefined, available, () => false)).toEqual({ providers: ["cpu"], deviceId: null, notes: [] });
  });

  it("CUDA when configured and installed, with CPU as the fallback; a device index from cuda:N", () => {
    expect(chooseExecutionProviders(["cuda", "cpu"], undefined, available, () => true).providers).toEqual(["cuda", "cpu"]);
    expect(chooseExecutionProviders(["cpu"], "cuda:1", available, () => true)).toMatchObject({ providers: ["cuda", "cpu"], deviceId: 1 });
  });

  it("CUDA configured but not installed: CPU, with a note that says how to install it", () => {
    const c = chooseExecutionProviders(["cuda"], undefined, available, () => false);
    expect(c.providers).toEqual(["cpu"]);
    expect(c.notes[0]).toMatch(/cuda execution provider is not installed.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it("device auto tries CUDA quietly; device cpu overrides the list; unknown providers are noted", () => {
    expect(chooseExecutionProviders(["cpu"], "auto", available, () => false)).toEqual({ providers: ["cpu"], deviceId: null, notes: [] });
    expect(chooseExecutionProviders(["cuda"], "cpu", available, () => true).providers).toEqual(["cpu"]);
    const c = chooseExecutionProviders(["coreml"], undefined, available, () => true);
    expect(c.providers).toEqual(["cpu"]);
    expect(c.notes[0]).toMatch(/coreml execution provider is not part of this onnxruntime-node build/);
  });
});

describe("poolTokens", () => {
  // batch 2, seq 3, dim 2; the second input has one padding token.
  const hidden = Float32Array.from([1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 99, 99]);
  const mask = [
    [1, 1, 1],
    [1, 1, 0],
  ];
  it("mean, cls, max and last token skip padding", () => {
    expect(poolTokens(hidden, [2, 3, 2], mask, "mean").map((v) => Array.from(v))).toEqual([
      [3, 4],
      [20, 30],
    ]);
    expect(poolTokens(hidden, [2, 3, 2], mask, "cls").map((v) => Array.from(v))).toEqual([
      [1, 2],
      [10, 20],
    ]);
    expect(poolTokens(hidden, [2, 3, 2], mask, "max").map((v) => Array.from(v))).toEqual([
      [5, 6],
      [30, 40],
    ]);
    expect(poolTokens(hidden, [2, 3, 2], mask, "lasttoken").map((v) => Array.from(v))).toEqual([
      [5, 6],
      [30, 40],
    ]);
  });

  it("l2Normalize gives unit vectors and leaves zero alone", () => {
    expect(l2Normalize([3, 4])).toEqual([0.6, 0.8]);
    expect(l2Normalize([0, 0])).toEqual([0, 0]);
  });
});

describe("float16ToFloat32", () => {
  it("converts normals, subnormals, zeros and infinities", () => {
    expect(Array.from(float16ToFloat32([0x3c00, 0xc000, 0x0000, 0x0001, 0x7c00, 0x3555]))).toEqual([1, -2, 0, 2 ** -24, Infinity, Math.fround(0.333251953125)]);
  });

  it("works from its own source alone, as the ONNX worker thread splices it in", () => {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- rebuilds the function from its source text, as the worker thread does
    const spliced = new Function(`return ${float16ToFloat32.toString()};`)() as typeof float16ToFloat32;
    const bits = [0x3c00, 0xc000, 0x0000, 0x0001, 0x7c00, 0x3555, 0xfc00];
    expect(Array.from(spliced(Uint16Array.from(bits)))).toEqual(Array.from(float16ToFloat32(bits)));
  });
});

describe("sampleToken: top_k, min_p, repeat_penalty", () => {
  const logits = [1, 3, 2.5, 0, 2.9];
  const draws = (sampling: Parameters<typeof sampleToken>[1], seed = 1) => {
    const random = createRandom(seed);
    return new Set(Array.from({ length: 400 }, () => sampleToken(logits, sampling, random)));
  };

  it("top_k 1 at any temperature is greedy", () => {
    expect(draws({ temperature: 1.5, topK: 1 })).toEqual(new Set([argmax(logits)]));
  });

  it("top_k 2 keeps the two most likely tokens", () => {
    expect(draws({ temperature: 2, topK: 2 })).toEqual(new Set([1, 4]));
  });

  it("top_k ties at the cut keep the lower id", () => {
    expect(new Set(Array.from({ length: 200 }, (_, i) => sampleToken([5, 1, 1, 1], { temperature: 1, topK: 2 }, createRandom(i))))).toEqual(new Set([0, 1]));
  });

  it("min_p drops tokens less likely than min_p times the most likely", () => {
    // At temperature 1: p(4)/p(1) = e^-0.1 ≈ 0.90, p(2)/p(1) = e^-0.5 ≈ 0.61.
    expect(draws({ temperature: 1, minP: 0.8 })).toEqual(new Set([1, 4]));
    expect(draws({ temperature: 1, minP: 0.5 })).toEqual(new Set([1, 2, 4]));
    expect(draws({ temperature: 1, minP: 0.5, topP: 0.99 })).toEqual(new Set([1, 2, 4]));
  });

  it("repeat_penalty divides positive logits of recent tokens (and multiplies negative ones)", () => {
    expect(sampleToken(logits, { temperature: 0, repeatPenalty: 1.2 }, Math.random, undefined, new Set([1]))).toBe(4);
    expect(sampleToken(logits, { temperature: 0, repeatPenalty: 1 }, Math.random, undefined, new Set([1]))).toBe(1);
    expect(sampleToken([-1, -1.1], { temperature: 0, repeatPenalty: 2 }, Math.random, undefined, new Set([0]))).toBe(1);
  });
});
