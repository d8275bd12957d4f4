import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSafetensors } from "../detection/safetensors/writeSafetensors.js";
import type { FakeHubRepo } from "../helpers/fakeHub.js";

/** Deterministic bytes, so hashes are stable across runs. */
export function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A GGUF-style repo with several quantisations (content is opaque to pull: no header is read). */
export function ggufRepo(size = 256 << 10): FakeHubRepo {
  return {
    files: {
      "README.md": "# model card",
      "tiny-Q8_0.gguf": bytes(size, 1),
      "tiny-Q4_K_M.gguf": bytes(size, 2),
      "tiny-F16.gguf": bytes(size, 3),
      "tiny-Q2_K.gguf": bytes(size, 4),
    },
  };
}

/** A transformers repo with everything a real one carries, of which a pull needs config, tokenizer and safetensors. */
export function safetensorsRepo(): FakeHubRepo {
  const weights = buildSafetensors([
    { name: "model.embed_tokens.weight", dtype: "F32", shape: [64, 16] },
    { name: "lm_head.weight", dtype: "F32", shape: [64, 16] },
  ]);
  return {
    files: {
      "config.json": JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 256 }),
      "generation_config.json": "{}",
      "tokenizer.json": JSON.stringify({ model: { type: "BPE", vocab: {} } }),
      "tokenizer_config.json": JSON.stringify({ chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" }),
      "model.safetensors": Buffer.from(weights),
      "pytorch_model.bin": randomBytes(1024),
      "README.md": "# card",
      "onnx/model.onnx": randomBytes(2048),
    },
  };
}

export async function tempDir(prefix: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
