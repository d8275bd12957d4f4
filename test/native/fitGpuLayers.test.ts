import { describe, expect, it } from "vitest";
import { openFileByteSource } from "../../src/detection/gguf/ByteSource.js";
import { readGgufHeader, type GgufHeader, type GgufValue } from "../../src/detection/gguf/readGgufHeader.js";
import { fitGpuLayers, ggufLayerSizes, type GgufLayerSizes } from "../../src/native/fitGpuLayers.js";
import type { GpuReport } from "../../src/native/queryGpus.js";
import { resolveGpuLayers } from "../../src/native/resolveGpuLayers.js";
import { ensureTinyLlmGguf } from "../fixtures/ensurePythonFixtures.js";

const GIB = 1024 ** 3;
const gpu = (freeGiB: number): GpuReport => ({
  gpus: [{ index: 0, name: "Fake GPU", vramTotalBytes: 80 * GIB, vramFreeBytes: freeGiB * GIB, driver: "1" }],
  cuda: "13.0",
  error: null,
  source: "fake",
});

/** A llama-7B-shaped header (32 blocks, 4096 wide, 8 KV heads) with Q4_K weights, built in memory. */
function sevenB(): GgufHeader {
  const md = new Map<string, GgufValue>([
    ["general.architecture", "llama"],
    ["llama.block_count", 32],
    ["llama.embedding_length", 4096],
    ["llama.attention.head_count", 32],
    ["llama.attention.head_count_kv", 8],
  ]);
  const Q4_K = 12;
  const tensors = [
    { name: "token_embd.weight", dims: [4096, 32000], type: Q4_K, offset: 0n },
    { name: "output.weight", dims: [4096, 32000], type: Q4_K, offset: 0n },
    { name: "output_norm.weight", dims: [4096], type: 0, offset: 0n },
  ];
  for (let i = 0; i < 32; i++) {
    for (const [n, dims] of [
      ["attn_q", [4096, 4096]],
      ["attn_k", [4096, 1024]],
      ["attn_v", [4096, 1024]],
      ["attn_output", [4096, 4096]],
      ["ffn_gate", [4096, 11008]],
      ["ffn_up", [4096, 11008]],
      ["ffn_down", [11008, 4096]],
    ] as const) {
      tensors.push({ name: `blk.${i}.${n}.weight`, dims: [...dims], type: Q4_K, offset: 0n });
    }
    tensors.push({ name: `blk.${i}.attn_norm.weight`, dims: [4096], type: 0, offset: 0n });
  }
  return { version: 3, metadata: md, types: new Map(), tensors, headerBytes: 0, alignment: 32, dataStart: 0, tokens: null };
}

describe("fitGpuLayers", () => {
  it("reads per-layer weights and KV sizes from the tiny fixture GGUF's real header, and fits it whole on a big GPU", async () => {
    const src = await openFileByteSource(await ensureTinyLlmGguf());
    let header: GgufHeader;
    try {
      header = await readGgufHeader(src);
    } finally {
      await src.close();
    }
    const sizes = ggufLayerSizes(header) as GgufLayerSizes;
    // make_tiny_llm.py's defaults: 2 layers, hidden 64, 4 heads, 2 KV heads, intermediate 128, F32.
    expect(sizes.layers).toBe(2);
    const perLayer = (64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3 + 64 * 2) * 4;
    expect(sizes.layerWeightBytes).toEqual([perLayer, perLayer]);
    expect(sizes.kvBytesPerLayerToken).toBe(2 * (16 + 16) * 2);
    const fit = fitGpuLayers({ sizes, kvTokens: 2048, gpus: gpu(8) });
    expect(fit.gpuLayers).toBe(3);
    expect(fit.reason).toMatch(/^auto: all 2 layers and the output fit in 8\.00 GiB free on Fake GPU/);
  });

  it("a 7B Q4_K: whole on 16 GiB free, part on 4 GiB, none under the margin or without a GPU", () => {
    const sizes = ggufLayerSizes(sevenB()) as GgufLayerSizes;
    expect(sizes.layers).toBe(32);
    // 177 M weights per block at 4.5 bits (Q4_K: 144 bytes per 256) plus an F32 norm; K+V per token: 8 heads x 128 x 2 x f16.
    const block = ((4096 * 4096 * 2 + 4096 * 1024 * 2 + 4096 * 11008 * 3) / 256) * 144 + 4096 * 4;
    expect(sizes.layerWeightBytes[0]).toBe(block);
    expect(sizes.kvBytesPerLayerToken).toBe(8 * 256 * 2);
    expect(fitGpuLayers({ sizes, kvTokens: 4096, gpus: gpu(16) }).gpuLayers).toBe(33);
    const part = fitGpuLayers({ sizes, kvTokens: 4096, gpus: gpu(4) });
    // budget 4 GiB - (0.5 GiB + 5 %) = 3.3 GiB; a layer is 95.1 MiB weights + 16 MiB KV.
    expect(part.gpuLayers).toBe(Math.floor((4 * GIB - 0.5 * GIB - 0.05 * 4 * GIB) / (block + 16 * 1024 ** 2)));
    expect(part.reason).toMatch(
      /^auto: 30 of 32 layers fit in 4\.00 GiB free on Fake GPU \(margin 0\.70 GiB\): 95\.1 MiB weights \+ 16\.0 MiB KV cache \(4096 tokens\) per layer$/,
    );
    expect(part.vramBytes).toBeLessThanOrEqual(4 * GIB - 0.7 * GIB);
    expect(fitGpuLayers({ sizes, kvTokens: 4096, gpus: gpu(0.5) })).toMatchObject({ gpuLayers: 0, vramBytes: 0, reason: expect.stringMatching(/no layer fits/) });
    const none = fitGpuLayers({ sizes, kvTokens: 4096, gpus: { gpus: [], cuda: null, error: "nvidia-smi is not installed (no NVIDIA driver)", source: "nvidia-smi" } });
    expect(none).toEqual({ gpuLayers: 0, vramBytes: 0, reason: "auto: no GPU (nvidia-smi is not installed (no NVIDIA driver)), all 32 layers on the CPU" });
  });

  it("a longer context moves layers off the GPU; an unknown tensor type or missing metadata is an error, not a guess", () => {
    const sizes = ggufLayerSizes(sevenB()) as GgufLayerSizes;
    const short = fitGpuLayers({ sizes, kvTokens: 2048, gpus: gpu(4) }).gpuLayers;
    const long = fitGpuLayers({ sizes, kvTokens: 32768, gpus: gpu(4) }).gpuLayers;
    expect(long).toBeLessThan(short);
    const odd = sevenB();
    odd.tensors[5] = { ...odd.tensors[5]!, type: 36 };
    expect(ggufLayerSizes(odd)).toEqual({ error: expect.stringMatching(/ggml type 36/) });
    const bare = sevenB();
    bare.metadata.delete("llama.block_count");
    expect(ggufLayerSizes(bare)).toEqual({ error: "the GGUF header has no llama.block_count" });
  });
});

describe("resolveGpuLayers", () => {
  it("auto on an NVIDIA report becomes the fit from the file's header; a set number stays; no GPU leaves auto to the engine", async () => {
    const path = await ensureTinyLlmGguf();
    const fitted = await resolveGpuLayers({ path, setting: "auto", kvTokens: 4096, env: {}, gpus: () => Promise.resolve(gpu(1)) });
    expect(fitted).toMatchObject({ gpuLayers: 3, reason: expect.stringMatching(/^auto: all 2 layers and the output fit/) });
    expect(fitted.vramBytes).toBeGreaterThan(0);
    expect(await resolveGpuLayers({ path, setting: 7, kvTokens: 4096, env: {} })).toEqual({ gpuLayers: 7, reason: "configured: 7", vramBytes: null });
    const noGpu = await resolveGpuLayers({
      path,
      setting: "auto",
      kvTokens: 4096,
      env: {},
      gpus: () => Promise.resolve({ gpus: [], cuda: null, error: "nvidia-smi is not installed (no NVIDIA driver)", source: "nvidia-smi" }),
    });
    expect(noGpu).toEqual({ gpuLayers: "auto", reason: "auto: left to the engine (nvidia-smi is not installed (no NVIDIA driver))", vramBytes: null });
    // TABAGENT_FAKE_GPUS reaches the default query.
    const fake = JSON.stringify({ gpus: [{ index: 0, name: "Tiny", vramTotalBytes: GIB, vramFreeBytes: 0.5 * GIB, driver: "1" }] });
    expect((await resolveGpuLayers({ path, setting: "auto", kvTokens: 4096, env: { TABAGENT_FAKE_GPUS: fake } })).reason).toMatch(
      /no layer fits in 0\.50 GiB free on Tiny/,
    );
  });
});
