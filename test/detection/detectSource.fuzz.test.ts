import { describe, expect, it } from "vitest";
import { DetectionError, detectSource } from "../../src/detection/detectSource.js";
import { InvalidGgufError } from "../../src/detection/gguf/readGgufHeader.js";
import { makeTinyChatModel } from "../fixtures/makeTinyChatModel.js";
import { makeTinyEmbeddingModel } from "../fixtures/makeTinyEmbeddingModel.js";
import { ggufLayout, tokenBytes } from "./gguf/ggufLayout.js";
import { writeLitertlm, writeTflite } from "./litert/writeFlatBuffer.js";
import { writeZip } from "./litert/writeZip.js";
import { MemoryModelFileSystem, rng, type MemoryFile } from "./onnx/memoryFs.js";
import { decoderSpec, encoderSpec, writeOnnx } from "./onnx/writeOnnx.js";
import { buildSafetensors } from "./safetensors/writeSafetensors.js";

/**
 * Mutations of real fixture files (the generated GGUF chat and embedding models, ONNX graphs, TFLite models, a
 * MediaPipe bundle, a LiteRT-LM container, a safetensors checkpoint), seeded. Two kinds:
 *  - broken: a rewrite that makes the file one the engine would refuse or crash on (a field set to an absurd value,
 *    a token damaged, a truncation): detection must not call it servable;
 *  - random: byte flips, inserts, deletes, stacked: detection must end in detections or a typed error, quickly.
 */

const SEED = 0xdecaf;
const RANDOM_CASES_PER_FIXTURE = 300;

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

interface Fixture {
  name: string;
  /** The file that is mutated. */
  file: string;
  /** Other files of the model (config, tokenizer), left intact. */
  others?: Record<string, MemoryFile>;
  bytes: Uint8Array;
  /** Targeted rewrites that leave a file the engine cannot load. */
  broken: ((r: Rand, b: Buffer) => Buffer)[];
}

// --- GGUF ------------------------------------------------------------------------------------------------------

function ggufBroken(file: Uint8Array, spm: boolean): ((r: Rand, b: Buffer) => Buffer)[] {
  const layout = ggufLayout(file);
  const fileLength = file.length;
  const tokens = layout.kvs.get("tokenizer.ggml.tokens")!.items!;
  const n = tokens.length;
  const u32 = (key: string, values: number[]) => (r: Rand, b: Buffer) => (b.writeUInt32LE(pick(r, values), layout.kvs.get(key)!.valueOffset), b);
  const tensor = (r: Rand) => pick(r, layout.tensors);
  const lastEnd = fileLength - 1; // the last tensor's data reaches into the last alignment block
  const out: ((r: Rand, b: Buffer) => Buffer)[] = [
    // A u32 key renamed general.alignment (same 17-byte length, so nothing moves) with a bad alignment.
    (r, b) => {
      const key = [...layout.kvs.keys()].find((k) => k.length === 17 && layout.kvs.get(k)!.type === 4);
      if (!key) return b.subarray(0, 0);
      const kv = layout.kvs.get(key)!;
      b.write("general.alignment", kv.valueOffset - 4 - 17, "latin1");
      b.writeUInt32LE(pick(r, [0, 3, 6, 24, 48, 0x80000001]), kv.valueOffset);
      return b;
    },
    u32(layout.kvs.has("llama.context_length") ? "llama.context_length" : "bert.context_length", [0, 0xffffffff, (1 << 27) + 1]),
    // A token that is not UTF-8 (0xFF never is), and a token made a copy of another of the same length.
    (r, b) => {
      const [at, len] = tokenBytes(layout, int(r, n));
      if (len === 0) return b.subarray(0, 0);
      b[at + int(r, len)] = 0xff;
      return b;
    },
    (r, b) => {
      for (let tries = 0; tries < 50; tries++) {
        const i = int(r, n);
        const j = int(r, n);
        const [ai, li] = tokenBytes(layout, i);
        const [aj, lj] = tokenBytes(layout, j);
        if (i !== j && li === lj && li > 0 && !b.subarray(ai, ai + li).equals(b.subarray(aj, aj + lj))) {
          b.copy(b, ai, aj, aj + lj);
          return b;
        }
      }
      return b.subarray(0, 0);
    },
    // Special token ids past the vocabulary.
    (r, b) => {
      const keys = [...layout.kvs.keys()].filter((k) => /^tokenizer\.ggml\.\w+_token_id$/.test(k));
      b.writeUInt32LE(n + int(r, 1000), layout.kvs.get(pick(r, keys))!.valueOffset);
      return b;
    },
    // Tensor data: an offset moved, a first dimension doubled, no tensors, the file cut inside the data.
    (r, b) => {
      const t = tensor(r);
      b.writeBigUInt64LE(b.readBigUInt64LE(t.offsetOffset) + BigInt(32 * (1 + int(r, 4))) + (r() < 0.2 ? 1n << 40n : 0n), t.offsetOffset);
      return b;
    },
    (r, b) => {
      const t = tensor(r);
      b.writeBigUInt64LE(b.readBigUInt64LE(t.dimOffsets[0]) * 2n, t.dimOffsets[0]);
      return b;
    },
    (_r, b) => (b.writeBigUInt64LE(0n, layout.tensorCountOffset), b),
    (r, b) => b.subarray(0, int(r, lastEnd - 64)),
  ];
  if (spm) {
    // The chat fixture's SentencePiece vocabulary: the <0x0A> byte token damaged (the real crash).
    const newline = tokens.findIndex(([at, len]) => len === 6 && Buffer.from(file.subarray(at + 8, at + 14)).toString() === "<0x0A>");
    out.push((r, b) => {
      const [at] = tokenBytes(layout, newline);
      b[at + int(r, 6)] = pick(r, [0, 0x20, 0x42, 0x5f]);
      return b;
    });
  }
  return out;
}

// --- ONNX, TFLite, ZIP, LiteRT-LM, safetensors --------------------------------------------------------------------

/** Position of field `slot` of the root table of a FlatBuffer (the writer's layout always sets the fields used here). */
function rootField(b: Uint8Array, slot: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const root = v.getUint32(0, true);
  const vtable = root - v.getInt32(root, true);
  return root + v.getUint16(vtable + 4 + 2 * slot, true);
}

function centralDirectory(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(b.length - 22 + 16, true);
}

const truncate = (minKeep: number, maxCut: number) => (r: Rand, b: Buffer) => b.subarray(0, minKeep + int(r, Math.max(1, b.length - maxCut - minKeep)));

function randomBytes(r: Rand, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => int(r, 256)));
}

function fixtures(): Fixture[] {
  const chat = makeTinyChatModel();
  const embed = makeTinyEmbeddingModel();
  const onnx = writeOnnx(decoderSpec(2));
  const tflite = writeTflite({
    subgraphs: ["prefill", "decode"],
    signatures: [
      { key: "prefill", inputs: ["tokens"] },
      { key: "decode", outputs: ["logits"] },
    ],
  });
  const task = writeZip([
    { name: "TF_LITE_PREFILL_DECODE", data: tflite },
    { name: "TOKENIZER_MODEL", data: new TextEncoder().encode("sentencepiece model") },
  ]);
  const litertlm = writeLitertlm({ sections: [{ dataType: 4 }, { dataType: 3, modelType: "tf_lite_prefill_decode" }] });
  const safetensors = buildSafetensors(
    [
      { name: "model.embed_tokens.weight", dtype: "BF16", shape: [32, 8] },
      { name: "model.norm.weight", dtype: "F32", shape: [8] },
    ],
    { format: "pt" },
  );
  const onnxProtoEnd = onnx.length;
  return [
    { name: "gguf-chat", file: "tiny-chat.gguf", bytes: chat, broken: ggufBroken(chat, true) },
    { name: "gguf-embed", file: "tiny-embed.gguf", bytes: embed, broken: ggufBroken(embed, false) },
    {
      name: "onnx",
      file: "model.onnx",
      others: { "config.json": JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama" }) },
      bytes: onnx,
      broken: [
        (r) => randomBytes(r, 16 + int(r, 4096)),
        truncate(1, 1),
        // ir_version (the first field, a varint after tag 0x08) set to 0; the opset_import (last, tag 0x42) renamed away.
        (_r, b) => ((b[1] = 0), b),
        (_r, b) => {
          const at = b.lastIndexOf(0x42, onnxProtoEnd - 3);
          b[at] = 0x4a;
          return b;
        },
      ],
    },
    {
      name: "onnx-encoder",
      file: "model.onnx",
      bytes: writeOnnx(encoderSpec()),
      broken: [truncate(1, 1), (r) => randomBytes(r, 16 + int(r, 512))],
    },
    {
      name: "tflite",
      file: "model.tflite",
      bytes: tflite,
      broken: [
        (r) => {
          const g = randomBytes(r, 64 + int(r, 4096));
          g.write("TFL3", 4, "latin1");
          return g;
        },
        truncate(8, 9),
        (r, b) => (b.writeUInt32LE(pick(r, [0, 1, 2, 4, 0xffffffff]), rootField(b, 0)), b),
        (r, b) => (b.writeUInt32LE(b.length + int(r, 1 << 20), 0), b),
      ],
    },
    {
      name: "task",
      file: "llm.task",
      bytes: task,
      broken: [
        truncate(4, 1),
        // The model entry deflated, with a bomb's ratio or not at all; the second entry pointed at the first's bytes.
        (r, b) => {
          const cd = centralDirectory(b);
          b.writeUInt16LE(8, cd + 10);
          if (r() < 0.5) b.writeUInt32LE(0xfffffff0, cd + 24);
          return b;
        },
        (_r, b) => {
          const cd = centralDirectory(b);
          const second = cd + 46 + b.readUInt16LE(cd + 28);
          b.writeUInt32LE(0, second + 42);
          return b;
        },
        (r, b) => {
          const cd = centralDirectory(b);
          b.writeUInt32LE(b.readUInt32LE(cd + 24) + 1 + int(r, 1000), cd + 24);
          return b;
        },
      ],
    },
    {
      name: "litertlm",
      file: "model.litertlm",
      bytes: litertlm,
      broken: [
        truncate(8, 1),
        (r, b) => (b.writeBigUInt64LE(BigInt(b.length + 1 + int(r, 1 << 20)), 24), b),
        (r) => {
          const g = randomBytes(r, 64 + int(r, 2048));
          g.write("LITERTLM", 0, "latin1");
          return g;
        },
      ],
    },
    {
      name: "safetensors",
      file: "model.safetensors",
      others: {
        "config.json": JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 2048 }),
        "tokenizer.json": "{}",
      },
      bytes: safetensors,
      broken: [truncate(0, 1), (r, b) => (b.writeBigUInt64LE(BigInt(b.length + int(r, 1 << 30)), 0), b)],
    },
  ];
}

function randomMutation(r: Rand, input: Uint8Array): Buffer {
  let b = Buffer.from(input);
  for (let step = 1 + int(r, 3); step > 0; step--) {
    // Mostly in the first 64 KiB, where every format keeps its header.
    const at = r() < 0.85 ? int(r, Math.min(b.length, 1 << 16)) : int(r, Math.max(1, b.length));
    switch (int(r, 6)) {
      case 0:
        for (let k = 1 + int(r, 8); k > 0; k--) {
          const p = Math.min(b.length - 1, at + int(r, 64));
          if (p >= 0) b[p] = int(r, 256);
        }
        break;
      case 1:
        if (at + 8 <= b.length) b.writeBigUInt64LE(pick(r, [0n, 1n, 0xffffffffn, 1n << 40n, 2n ** 64n - 1n, BigInt(b.length)]), at);
        break;
      case 2:
        b = b.subarray(0, at);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 16)))]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + int(r, 16)), b.subarray(at)]);
        break;
      default:
        if (at + 4 <= b.length) b.writeUInt32LE(pick(r, [0, 1, 3, 8, 9, 31, 64, 0xffffffff]), at);
    }
  }
  return b;
}

type Outcome = "servable" | "not-servable" | "typed-error";

async function detect(fx: Fixture, bytes: Uint8Array): Promise<{ outcome: Outcome; why: string }> {
  const files: Record<string, MemoryFile> = { ...(fx.others ?? {}), [fx.file]: bytes };
  const fs = new MemoryModelFileSystem(files);
  const single = fx.others === undefined;
  try {
    const ds = await detectSource(`fuzz/${fx.name}`, { openRemote: async () => ({ fs, file: single ? fx.file : null }) });
    const served = ds.find((d) => d.engine !== null);
    return served ? { outcome: "servable", why: served.reason } : { outcome: "not-servable", why: ds.map((d) => d.reason).join("; ") };
  } catch (err) {
    // The typed ways detection refuses a source; anything else (TypeError, RangeError, ...) is a bug.
    if (err instanceof InvalidGgufError || err instanceof DetectionError) return { outcome: "typed-error", why: err.message };
    throw new Error(`${fx.name}: untyped ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
  }
}

describe("detectSource fuzz over mutated fixture files", () => {
  const all = fixtures();

  it("the unmutated fixtures are servable", async () => {
    for (const fx of all) expect((await detect(fx, fx.bytes)).outcome, fx.name).toBe("servable");
  });

  it("no broken file is called servable, and each ends quickly", async () => {
    const r = rng(SEED);
    const failures: string[] = [];
    let cases = 0;
    const t0 = performance.now();
    for (const fx of all) {
      for (const [k, breakIt] of fx.broken.entries()) {
        for (let rep = 0; rep < 12; rep++) {
          const bytes = breakIt(r, Buffer.from(fx.bytes));
          if (bytes.length === 0 && fx.name !== "safetensors") continue; // the rewrite did not apply to this file
          cases++;
          const c0 = performance.now();
          const { outcome, why } = await detect(fx, bytes);
          if (outcome === "servable") failures.push(`${fx.name} broken#${k} rep ${rep}: servable (${why})`);
          if (performance.now() - c0 > 500) failures.push(`${fx.name} broken#${k} took ${(performance.now() - c0).toFixed(0)} ms`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(cases).toBeGreaterThan(300);
    expect(performance.now() - t0).toBeLessThan(15_000);
  });

  it(`${RANDOM_CASES_PER_FIXTURE} random mutations per fixture end in a result or a typed error, quickly`, async () => {
    const r = rng(SEED + 1);
    const counts: Record<Outcome, number> = { servable: 0, "not-servable": 0, "typed-error": 0 };
    let slowest = 0;
    const t0 = performance.now();
    for (const fx of all) {
      for (let i = 0; i < RANDOM_CASES_PER_FIXTURE; i++) {
        const c0 = performance.now();
        counts[(await detect(fx, randomMutation(r, fx.bytes))).outcome]++;
        slowest = Math.max(slowest, performance.now() - c0);
      }
    }
    expect(slowest).toBeLessThan(500);
    expect(performance.now() - t0).toBeLessThan(15_000);
    // Both outcomes occur: the mutations neither all miss nor all break.
    expect(counts["not-servable"] + counts["typed-error"]).toBeGreaterThan(all.length * RANDOM_CASES_PER_FIXTURE * 0.3);
    expect(counts.servable).toBeGreaterThan(0);
  });
});
