import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ggufDetails } from "../../../src/core/detectionSchema.js";
import { chooseEngine } from "../../../src/detection/chooseEngine.js";
import { decideGgufFlavor } from "../../../src/detection/gguf/decideGgufFlavor.js";
import { detectGgufModel } from "../../../src/detection/gguf/detectGgufModel.js";
import { MAINLINE_GGML_BLOCKS } from "../../../src/detection/gguf/ggmlTypes.js";
import { groupGgufFiles } from "../../../src/detection/groupGgufFiles.js";
import { LocalModelFileSystem } from "../../../src/detection/ModelFileSystem.js";
import { GgufWriter, GgufValueType } from "../../fixtures/gguf/GgufWriter.js";

/** A header-only GGUF: the tensor data is zeros of the right size for the given type ids. */
function gguf(arch: string, tensors: [string, number, number[]][], extra: (w: GgufWriter) => void = () => {}): Buffer {
  const w = new GgufWriter().addString("general.architecture", arch).addUint32(`${arch}.context_length`, 4096);
  extra(w);
  for (const [name, type, dims] of tensors) {
    // Mainline types get their exact size (llama.cpp checks it); BitNet-only ones, whose sizes detection does not know, 64 bytes.
    const block = MAINLINE_GGML_BLOCKS[type];
    const bytes = block && !(type >= 36 && type <= 38) ? (dims.reduce((a, d) => a * d, 1) / block[0]) * block[1] : 64;
    w.addTensorRaw(name, dims, type, new Uint8Array(bytes));
  }
  return w.toBuffer();
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gguf-detect-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function detect(name: string, buf: Buffer) {
  await writeFile(join(dir, name), buf);
  const fs = await LocalModelFileSystem.create(join(dir, name));
  const [entry] = await fs.list();
  const d = await detectGgufModel(fs, { main: entry!, shards: [], projector: null });
  return { ...d, choice: chooseEngine(d) };
}

describe("BitNet or standard llama.cpp, from the header", () => {
  it("I2_S tensors (ggml type 36) → BitNet server, naming the tensor", async () => {
    const d = await detect(
      "i2s.gguf",
      gguf(
        "bitnet-b1.58",
        [
          ["token_embd.weight", 1, [64, 8]],
          ["blk.0.attn_q.weight", 36, [64, 64]],
        ],
        (w) => w.addUint32("general.file_type", 40),
      ),
    );
    expect(d.format).toBe("bitnet-gguf");
    expect(d.quantization).toBe("I2_S");
    expect(d.reason).toMatch(/blk\.0\.attn_q\.weight has type I2_S \(ggml type 36\)/);
    expect(d.choice.engine).toEqual({ name: "llama-server-bitnet", reason: expect.stringMatching(/I2_S/) });
  });

  it("TL1/TL2 kernel types → BitNet server", () => {
    expect(decideGgufFlavor("llama", [{ type: 38, count: 4, example: "blk.1.ffn_up.weight" }])).toMatchObject({ bitnet: true, reason: expect.stringMatching(/TL1/) });
    expect(decideGgufFlavor("bitnet-25", [{ type: 39, count: 4, example: "w" }])).toMatchObject({ bitnet: true, reason: expect.stringMatching(/TL2/) });
  });

  it("type 39 outside a BitNet architecture is mainline MXFP4", () => {
    expect(decideGgufFlavor("gpt-oss", [{ type: 39, count: 4, example: "w" }]).bitnet).toBe(false);
  });

  it("a type id mainline ggml does not define → BitNet server, saying so", () => {
    expect(decideGgufFlavor("llama", [{ type: 31, count: 1, example: "x" }])).toMatchObject({
      bitnet: true,
      reason: expect.stringMatching(/ggml type 31, which mainline ggml does not define/),
    });
    expect(decideGgufFlavor("llama", [{ type: 77, count: 1, example: "x" }]).bitnet).toBe(true);
  });

  it("ternary TQ1_0/TQ2_0 run on the standard engine, even for a bitnet architecture", async () => {
    const d = await detect(
      "tq.gguf",
      gguf("bitnet", [["blk.0.attn_q.weight", 35, [256, 4]]], (w) => w.addUint32("general.file_type", 37)),
    );
    expect(d.format).toBe("gguf");
    expect(d.quantization).toBe("TQ2_0");
    expect(d.reason).toMatch(/ternary tensors \(TQ2_0/);
    expect(d.choice.engine?.name).toBe("node-llama-cpp");
  });

  it("a BitNet architecture with ordinary tensors → BitNet server, by the architecture key", async () => {
    const d = await detect("arch.gguf", gguf("bitnet-b1.58", [["w", 1, [64, 4]]]));
    expect(d.format).toBe("bitnet-gguf");
    expect(d.reason).toMatch(/general\.architecture = bitnet-b1\.58/);
  });

  it("an ordinary model stays on node-llama-cpp with llama-server as an alternative", async () => {
    const d = await detect(
      "q4.gguf",
      gguf(
        "qwen2",
        [
          ["blk.0.attn_q.weight", 12, [256, 4]],
          ["output_norm.weight", 0, [4]],
        ],
        (w) => {
          w.addUint32("general.file_type", 15);
          w.addString("tokenizer.chat_template", "{{ messages }}");
        },
      ),
    );
    expect(d).toMatchObject({ format: "gguf", task: "chat", quantization: "Q4_K_M", contextLength: 4096, hasChatTemplate: true, architecture: "qwen2" });
    expect(d.parameterCount).toBe(256 * 4 + 4);
    expect(ggufDetails(d)?.tensorTypes).toEqual({ Q4_K: 1, F32: 1 });
    expect(d.choice).toEqual({ engine: { name: "node-llama-cpp", reason: expect.any(String) }, alternatives: ["llama-server"] });
  });

  it("an engine override must be able to serve the format", async () => {
    const d = await detect("q8.gguf", gguf("llama", [["w", 8, [32, 4]]]));
    expect(chooseEngine(d, { override: "llama-server" }).engine).toEqual({ name: "llama-server", reason: "chosen in the model's config" });
    expect(() => chooseEngine(d, { override: "onnxruntime" })).toThrow(/cannot serve a gguf model/);
  });

  it("embedding architectures and pooling types are embeddings", async () => {
    const nomic = await detect("nomic.gguf", gguf("nomic-bert", [["w", 1, [8, 8]]]));
    expect(nomic.task).toBe("embeddings");
    const pooled = await detect(
      "pool.gguf",
      gguf("qwen3", [["w", 1, [8, 8]]], (w) => w.addUint32("qwen3.pooling_type", 3)),
    );
    expect(pooled.task).toBe("embeddings");
    expect(pooled.reason).toMatch(/qwen3\.pooling_type = 3/);
  });

  it("pooling type 4 (rank) is a reranker, whatever the architecture", async () => {
    for (const arch of ["bert", "qwen3"]) {
      const d = await detect(
        `rank-${arch}.gguf`,
        gguf(arch, [["w", 1, [8, 8]]], (w) => w.addUint32(`${arch}.pooling_type`, 4)),
      );
      expect(d.task).toBe("rerank");
      expect(d.reason).toMatch(new RegExp(`${arch}\\.pooling_type = 4 \\(rank\\): a reranker`));
    }
  });

  it("an unknown value type in the header is a typed error", async () => {
    const buf = gguf("llama", [["w", 1, [8, 8]]], (w) => w.addArray("a", GgufValueType.UINT8, [1]));
    // corrupt the array's item type (right after the key "a" and the ARRAY type id)
    const at = buf.indexOf(Buffer.from([0x01, 0, 0, 0, 0, 0, 0, 0, 0x61, 9, 0, 0, 0]));
    buf.writeUInt32LE(99, at + 13);
    await expect(detect("bad.gguf", buf)).rejects.toThrow(/unknown array item type 99/);
  });
});

describe("groupGgufFiles", () => {
  const f = (path: string) => ({ path, size: 1 });
  it("joins split files and attaches projectors", () => {
    const groups = groupGgufFiles([
      f("llava-7b-q4.gguf"),
      f("mmproj-llava-7b-f16.gguf"),
      f("big-00002-of-00002.gguf"),
      f("big-00001-of-00002.gguf"),
      f("sub/solo.gguf"),
      f("sub/mmproj.gguf"),
      f("readme.md"),
    ]);
    expect(groups.map((g) => [g.main.path, g.shards.map((s) => s.path), g.projector?.path ?? null])).toEqual([
      ["big-00001-of-00002.gguf", ["big-00002-of-00002.gguf"], null],
      ["llava-7b-q4.gguf", [], "mmproj-llava-7b-f16.gguf"],
      ["sub/solo.gguf", [], "sub/mmproj.gguf"],
    ]);
  });
});
