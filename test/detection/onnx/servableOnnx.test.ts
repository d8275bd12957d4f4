import { describe, expect, it } from "vitest";
import { detectSource } from "../../../src/detection/detectSource.js";
import type { Detection } from "../../../src/core/detectionSchema.js";
import { MemoryModelFileSystem, rng, type MemoryFile } from "./memoryFs.js";
import { concat, decoderSpec, encoderSpec, intField, messageField, stringField, writeOnnx } from "./writeOnnx.js";

async function detect(files: Record<string, MemoryFile>, file: string | null = null): Promise<Detection> {
  const fs = new MemoryModelFileSystem(files);
  const [d] = await detectSource("memory/model", { openRemote: async () => ({ fs, file }) });
  return d!;
}

async function notServable(bytes: MemoryFile, why?: RegExp): Promise<Detection> {
  const d = await detect({ "model.onnx": bytes }, "model.onnx");
  expect(d.engine, `should not be servable: ${d.reason}`).toBeNull();
  expect(d.format).toBe("onnx");
  expect(d.details["invalidWeights"]).toBeDefined();
  if (why) expect(d.reason).toMatch(why);
  return d;
}

describe("ONNX: a file named .onnx must hold a graph onnxruntime can load", () => {
  it("a valid graph is servable, alone or in an export folder", async () => {
    expect((await detect({ "model.onnx": writeOnnx(decoderSpec()) }, "model.onnx")).engine?.name).toBe("onnxruntime");
    expect((await detect({ "model.onnx": writeOnnx(encoderSpec()), "config.json": JSON.stringify({ architectures: ["BertModel"] }) })).engine?.name).toBe("onnxruntime");
  });

  it("random bytes named .onnx are not servable (seeded, 25 files)", async () => {
    const rand = rng(25);
    for (let i = 0; i < 25; i++) {
      const bytes = Uint8Array.from({ length: 16 + Math.floor(rand() * 8192) }, () => Math.floor(rand() * 256));
      await notServable(bytes);
    }
  });

  it("protobuf that parses but is no model: no opset_import, no outputs, a node without an operator, ir_version 0", async () => {
    await notServable(writeOnnx(decoderSpec(1, { opsets: [] })), /no opset_import/);
    await notServable(writeOnnx(encoderSpec({ outputs: [] })), /no outputs/);
    await notServable(writeOnnx(encoderSpec({ outputs: [{ name: "" }] })), /output has no name/);
    await notServable(writeOnnx(encoderSpec({ nodes: [{ op: "" }] })), /1 node\(s\) without an op_type/);
    await notServable(writeOnnx(encoderSpec({ irVersion: 0 })), /implausible ir_version 0/);
    await notServable(writeOnnx(encoderSpec({ opsets: [{ version: 0 }] })), /opset_import for domain 'ai.onnx' has version 0/);
    // Just an ir_version and an empty graph: protobuf is happy, onnxruntime is not.
    await notServable(concat([intField(1, 8), messageField(7, [stringField(2, "g")])]));
  });

  it("every strict truncation of a valid graph is not servable", async () => {
    const valid = writeOnnx(decoderSpec(1));
    for (let n = 1; n < valid.length; n += 7) await notServable(valid.subarray(0, n));
  });

  it("a lone file with another name is only ONNX when it is a loadable graph", async () => {
    expect((await detect({ weights: writeOnnx(decoderSpec(1, { opsets: [] })) }, "weights")).format).toBe("unknown");
    expect((await detect({ weights: writeOnnx(decoderSpec(1)) }, "weights")).format).toBe("onnx");
  });
});
