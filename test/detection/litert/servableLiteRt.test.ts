import { deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { detectSource } from "../../../src/detection/detectSource.js";
import { liteRtDetails, type Detection } from "../../../src/core/detectionSchema.js";
import { readZipDirectory } from "../../../src/detection/litert/readZipDirectory.js";
import { MemoryModelFileSystem, memorySource, rng, type MemoryFile } from "../onnx/memoryFs.js";
import { writeLitertlm, writeTflite } from "./writeFlatBuffer.js";
import { writeZip } from "./writeZip.js";

async function detectOne(name: string, file: MemoryFile): Promise<Detection> {
  const fs = new MemoryModelFileSystem({ [name]: file });
  const [d] = await detectSource(`memory/${name}`, { openRemote: async () => ({ fs, file: name }) });
  return d!;
}

async function notServable(name: string, file: MemoryFile, why?: RegExp): Promise<Detection> {
  const d = await detectOne(name, file);
  expect(d.engine, `${name} should not be servable: ${d.reason}`).toBeNull();
  if (why) expect(`${d.reason}\n${d.warnings.join("\n")}`).toMatch(why);
  return d;
}

/** Rewrites the central directory entry of the first file of a writeZip archive: [offset in the entry, size, value]. */
function patchCentral(zip: Uint8Array, edits: [number, 2 | 4, number][]): Uint8Array {
  const out = Uint8Array.from(zip);
  const v = new DataView(out.buffer);
  const cdOffset = v.getUint32(out.length - 22 + 16, true);
  for (const [at, size, value] of edits) {
    if (size === 2) v.setUint16(cdOffset + at, value, true);
    else v.setUint32(cdOffset + at, value, true);
  }
  return out;
}

describe("TFLite: the TFL3 marker alone is not a model", () => {
  it("the writer's model is servable", async () => {
    expect((await detectOne("model.tflite", writeTflite({}))).engine?.name).toBe("litert");
  });

  it("random bytes carrying TFL3 at byte 4 are not servable (seeded, 25 files)", async () => {
    const rand = rng(61);
    for (let i = 0; i < 25; i++) {
      const b = Uint8Array.from({ length: 64 + Math.floor(rand() * 4096) }, () => Math.floor(rand() * 256));
      b.set([0x54, 0x46, 0x4c, 0x33], 4);
      await notServable(`r${i}.tflite`, b);
    }
  });

  it.each([
    ["schema version 2", { version: 2 }, /schema version 2, the runtime requires 3/],
    ["no subgraphs", { omit: ["subgraphs" as const] }, /no subgraphs/],
    ["no operator codes", { omit: ["operator_codes" as const] }, /no operator_codes/],
    ["no buffers", { omit: ["buffers" as const] }, /no buffers table/],
    ["no tensors", { omit: ["tensors" as const] }, /subgraph 0 has no tensors table/],
    ["a tensor's buffer out of range", { weightBuffer: 7 }, /tensor 1 uses buffer 7 of 2/],
    ["an opcode index out of range", { opcodeIndex: 3 }, /operator 0 uses opcode 3 of 1/],
    ["a subgraph output out of range", { outputTensor: 9 }, /subgraph 0 output refers to tensor 9/],
    ["an external buffer past the end", { externalBuffer: { offset: 1 << 20, size: 64 } }, /buffer 2 \(64 bytes at 1048576\) lies past the end/],
  ])("%s", async (_name, opts, why) => {
    await notServable("model.tflite", writeTflite(opts), why);
  });

  it("a root offset or vtable pointing off the buffer", async () => {
    const bad = Uint8Array.from(writeTflite({}));
    new DataView(bad.buffer).setUint32(0, bad.length + 100, true);
    await notServable("model.tflite", bad, /root table offset/);
    const vt = Uint8Array.from(writeTflite({}));
    const root = new DataView(vt.buffer).getUint32(0, true);
    new DataView(vt.buffer).setInt32(root, -100000, true); // soffset to a vtable past the end
    await notServable("model.tflite", vt, /outside the buffer|overruns/);
  });
});

describe("MediaPipe .task bundles and ZIP bombs", () => {
  const model = writeTflite({ subgraphs: ["prefill", "decode"] });

  it("a stored bundle with a valid model is servable", async () => {
    const d = await detectOne(
      "llm.task",
      writeZip([
        { name: "TF_LITE_PREFILL_DECODE", data: model },
        { name: "TOKENIZER_MODEL", data: new Uint8Array(8) },
      ]),
    );
    expect(d.engine?.name).toBe("litert");
  });

  it("a bundle whose model entry is garbage with TFL3 is not", async () => {
    const garbage = Uint8Array.from({ length: 256 }, (_, i) => (i * 37) & 0xff);
    garbage.set([0x54, 0x46, 0x4c, 0x33], 4);
    await notServable("llm.task", writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: garbage }]), /not a TFLite model the runtime can load/);
  });

  it("a deflated entry claiming 1000x its size (a ZIP bomb) is refused without inflating anything", async () => {
    const zip = writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: model }]);
    // method 8, compressed = stored size, uncompressed = 4 GiB - 1.
    const bomb = patchCentral(zip, [
      [10, 2, 8],
      [24, 4, 0xfffffff0],
    ]);
    await expect(readZipDirectory(memorySource(bomb))).rejects.toThrow(/would inflate .* a ZIP bomb/);
    await notServable("bomb.task", bomb, /ZIP bomb/);
  });

  it("compressed entries (MediaPipe reads entries in place), overlapping entries, stored sizes that disagree", async () => {
    const deflated = deflateRawSync(Buffer.from(model));
    const compressed = patchCentral(writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: model }]), [
      [10, 2, 8],
      [20, 4, deflated.length],
    ]);
    await notServable("c.task", compressed, /entry TF_LITE_PREFILL_DECODE is compressed/);

    const two = writeZip([
      { name: "TF_LITE_PREFILL_DECODE", data: model },
      { name: "TF_LITE_EMBEDDER", data: model },
    ]);
    // Point the second central entry at the first local header: both names share one body.
    const v = new DataView(two.buffer.slice(0));
    const out = new Uint8Array(v.buffer);
    const cd = v.getUint32(out.length - 22 + 16, true);
    const second = cd + 46 + "TF_LITE_PREFILL_DECODE".length;
    v.setUint32(second + 42, 0, true);
    await expect(readZipDirectory(memorySource(out))).rejects.toThrow(/overlap/);
    await notServable("o.task", out, /overlap/);

    const mismatch = patchCentral(writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: model }]), [[24, 4, model.length * 2]]);
    await notServable("m.task", mismatch, /is stored but claims/);
  });

  it("too many entries", async () => {
    const many = writeZip([{ name: "TF_LITE_PREFILL_DECODE", data: model }, ...Array.from({ length: 1100 }, (_, i) => ({ name: `f${i}`, data: new Uint8Array(1) }))]);
    await notServable("many.task", many, /more than 1024/);
  });
});

describe("LiteRT-LM containers", () => {
  it("a container with a valid TFLiteModel section is servable", async () => {
    expect((await detectOne("m.litertlm", writeLitertlm({ sections: [{ dataType: 4 }, { dataType: 3 }] }))).engine?.name).toBe("litert");
  });

  it.each([
    ["a section past the end of the file", [{ dataType: 3, begin: 4096, end: 1 << 30 }], /lies outside the file's data/],
    ["a section inside the header", [{ dataType: 3, begin: 40, end: 200 }], /lies outside the file's data/],
    ["a section that runs backwards", [{ dataType: 4, begin: 900, end: 800 }, { dataType: 3 }], /lies outside the file's data/],
    ["no TFLiteModel section", [{ dataType: 4 }, { dataType: 5 }], /holds no TFLiteModel section/],
    ["a TFLiteModel section of garbage", [{ dataType: 3, data: new Uint8Array(512).fill(7) }], /not a TFLite model the runtime can load/],
  ])("%s", async (_name, sections, why) => {
    await notServable("m.litertlm", writeLitertlm({ sections }), why);
  });

  it("overlapping sections and no sections at all", async () => {
    const base = writeLitertlm({ sections: [{ dataType: 3 }, { dataType: 4 }] });
    const fs = new MemoryModelFileSystem({ x: base });
    const d = (await detectSource("m", { openRemote: async () => ({ fs, file: "x" }) }))[0]!;
    const [a] = liteRtDetails(d)?.litertlm?.sections ?? [];
    const overlapping = writeLitertlm({ sections: [{ dataType: 3 }, { dataType: 4, begin: a!.begin + 8, end: a!.end + 8 }] });
    await notServable("m.litertlm", overlapping, /overlap/);
    await notServable("m.litertlm", writeLitertlm({ sections: [] }), /lists no sections/);
  });

  it("garbage after the LITERTLM magic is not servable (seeded, 25 files)", async () => {
    const rand = rng(43);
    for (let i = 0; i < 25; i++) {
      const b = Uint8Array.from({ length: 64 + Math.floor(rand() * 4096) }, () => Math.floor(rand() * 256));
      b.set(new TextEncoder().encode("LITERTLM"), 0);
      if (i % 2 === 0) new DataView(b.buffer).setBigUint64(24, BigInt(32 + Math.floor(rand() * (b.length - 32))), true);
      await notServable(`g${i}.litertlm`, b);
    }
  });
});
