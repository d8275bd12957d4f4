import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { openFileByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { InvalidGgufError, readGgufHeader } from "../../../src/detection/gguf/readGgufHeader.js";
import { summarizeGguf } from "../../../src/detection/gguf/summarizeGguf.js";
import { GgufWriter, GgufValueType } from "../../fixtures/gguf/GgufWriter.js";
import { makeTinyChatModel } from "../../fixtures/makeTinyChatModel.js";
import { makeTinyEmbeddingModel } from "../../fixtures/makeTinyEmbeddingModel.js";

function bufferSource(buf: Uint8Array): ByteSource & { reads: number; bytesRead: number } {
  const src = {
    size: buf.length,
    reads: 0,
    bytesRead: 0,
    async read(offset: number, length: number) {
      src.reads++;
      const out = buf.subarray(offset, Math.min(buf.length, offset + length));
      src.bytesRead += out.length;
      return out;
    },
    async close() {},
  };
  return src;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readGgufHeader", () => {
  it("reads metadata of every type and tensor infos", async () => {
    const w = new GgufWriter()
      .addString("general.architecture", "llama")
      .addUint32("llama.context_length", 4096)
      .addInt64("big", 1n << 40n)
      .addFloat32("f", 0.5)
      .addBool("yes", true)
      .addArray("short", GgufValueType.INT32, [1, 2, 3])
      .addArray(
        "long",
        GgufValueType.STRING,
        Array.from({ length: 1000 }, (_, i) => `tok${i}`),
      )
      .addTensorF32("w", [4, 2], new Float32Array(8))
      .addTensorRaw("bitnet", [256], 36, new Uint8Array(64));
    const h = await readGgufHeader(bufferSource(w.toBuffer()));
    expect(h.version).toBe(3);
    expect(h.metadata.get("general.architecture")).toBe("llama");
    expect(h.metadata.get("llama.context_length")).toBe(4096);
    expect(h.metadata.get("big")).toBe(1n << 40n);
    expect(h.metadata.get("f")).toBe(0.5);
    expect(h.metadata.get("yes")).toBe(true);
    expect(h.metadata.get("short")).toEqual({ arrayType: GgufValueType.INT32, length: 3, items: [1, 2, 3] });
    expect(h.metadata.get("long")).toEqual({ arrayType: GgufValueType.STRING, length: 1000, items: null });
    expect(h.tensors.map((t) => [t.name, t.dims, t.type])).toEqual([
      ["w", [4, 2], 0],
      ["bitnet", [256], 36],
    ]);
  });

  it("reads only the header of a huge file", async () => {
    const header = makeTinyChatModel().subarray(0, 40_000); // header + the start of the weights
    const size = 10 * 2 ** 30;
    let bytesRead = 0;
    const src: ByteSource = {
      size,
      async read(offset, length) {
        const out = new Uint8Array(Math.min(length, size - offset));
        out.set(header.subarray(offset, offset + out.length));
        bytesRead += out.length;
        return out;
      },
      async close() {},
    };
    const h = await readGgufHeader(src);
    expect(h.tensors.length).toBeGreaterThan(10);
    expect(bytesRead).toBeLessThanOrEqual(1 << 20);
  });

  it("summarises the fixtures: chat and embeddings", async () => {
    const chat = summarizeGguf(await readGgufHeader(bufferSource(makeTinyChatModel())));
    expect(chat).toMatchObject({ architecture: "llama", task: "chat", name: "tabagent-tiny-chat", contextLength: 2048 });
    expect(chat.chatTemplate).toContain("im_start");
    const embed = summarizeGguf(await readGgufHeader(bufferSource(makeTinyEmbeddingModel())));
    expect(embed).toMatchObject({ architecture: "bert", task: "embeddings", poolingType: 1 });
  });

  it("classifies a decoder with a pooling type as embeddings and one without a template as text-generation", async () => {
    const pooled = new GgufWriter().addString("general.architecture", "qwen3").addUint32("qwen3.pooling_type", 3).toBuffer();
    expect(summarizeGguf(await readGgufHeader(bufferSource(pooled)))).toMatchObject({ task: "embeddings", taskReason: "qwen3.pooling_type = 3" });
    const base = new GgufWriter().addString("general.architecture", "llama").toBuffer();
    expect(summarizeGguf(await readGgufHeader(bufferSource(base))).task).toBe("text-generation");
  });

  it.each([
    ["empty", new Uint8Array(0), /too small/],
    ["bad magic", Buffer.from("GGUX".padEnd(64, "\0")), /bad magic/],
    [
      "version 9",
      (() => {
        const b = Buffer.alloc(64);
        b.write("GGUF");
        b.writeUInt32LE(9, 4);
        return b;
      })(),
      /version 9/,
    ],
    [
      "huge counts",
      (() => {
        const b = Buffer.alloc(64);
        b.write("GGUF");
        b.writeUInt32LE(3, 4);
        b.writeBigUInt64LE(1n << 60n, 8);
        return b;
      })(),
      /implausible tensor count/,
    ],
    ["truncated", new GgufWriter().addString("general.architecture", "llama").addString("x", "y".repeat(100)).toBuffer().subarray(0, 60), /unexpected end/],
  ])("rejects %s input with InvalidGgufError", async (_name, buf, message) => {
    const err = await readGgufHeader(bufferSource(buf)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidGgufError);
    expect((err as Error).message).toMatch(message);
  });

  it("reads from a file", async () => {
    const path = join(dir, "m.gguf");
    await writeFile(path, makeTinyEmbeddingModel());
    const src = await openFileByteSource(path);
    try {
      expect((await readGgufHeader(src)).metadata.get("general.architecture")).toBe("bert");
    } finally {
      await src.close();
    }
  });
});
