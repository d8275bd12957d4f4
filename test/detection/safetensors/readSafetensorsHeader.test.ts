import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { DEFAULT_MAX_SAFETENSORS_HEADER_BYTES, InvalidSafetensorsError, readSafetensorsHeader } from "../../../src/detection/safetensors/readSafetensorsHeader.js";
import { memoryByteSource } from "./memoryByteSource.js";
import { buildSafetensors, encodeSafetensors, type TensorSpec } from "./writeSafetensors.js";

const TENSORS: TensorSpec[] = [
  { name: "model.embed_tokens.weight", dtype: "BF16", shape: [32, 16] },
  { name: "model.norm.weight", dtype: "F32", shape: [16] },
  { name: "lm_head.weight", dtype: "BF16", shape: [32, 16] },
  { name: "scalar", dtype: "I64", shape: [] },
  { name: "empty", dtype: "F16", shape: [0, 7] },
];

/** A file whose header is `header` (any object) over `dataBytes` zero bytes. */
function fileWith(header: unknown, dataBytes: number): Uint8Array {
  return encodeSafetensors(JSON.stringify(header), dataBytes);
}

async function rejects(bytes: Uint8Array, pattern: RegExp, maxHeaderBytes?: number): Promise<void> {
  const src = memoryByteSource(bytes);
  const err = await readSafetensorsHeader(src, { maxHeaderBytes }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidSafetensorsError);
  expect((err as Error).message).toMatch(pattern);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safetensors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readSafetensorsHeader", () => {
  it("returns tensors, metadata, dtype histogram and parameter count with two reads", async () => {
    const bytes = buildSafetensors(TENSORS, { format: "pt", note: "x" });
    const src = memoryByteSource(bytes);
    const h = await readSafetensorsHeader(src);
    expect(src.reads).toEqual([
      [0, 8],
      [8, h.headerBytes],
    ]);
    expect(h.headerBytes % 8).toBe(0); // the writer pads like the reference one
    expect(h.dataStart).toBe(8 + h.headerBytes);
    expect(h.metadata).toEqual({ format: "pt", note: "x" });
    expect(h.tensors.map((t) => t.name)).toEqual(["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "scalar", "empty"]);
    const lm = h.tensors[2]!;
    expect(lm).toMatchObject({ dtype: "BF16", shape: [32, 16], elements: 512, byteLength: 1024, dataOffsets: [1088, 2112] });
    expect(lm.fileOffset).toBe(h.dataStart + 1088);
    expect(h.tensors[3]).toMatchObject({ shape: [], elements: 1, byteLength: 8 });
    expect(h.tensors[4]).toMatchObject({ elements: 0, byteLength: 0 });
    expect(h.parameterCount).toBe(512 + 16 + 512 + 1);
    expect(h.dtypes).toEqual({
      BF16: { tensors: 2, parameters: 1024, bytes: 2048 },
      F32: { tensors: 1, parameters: 16, bytes: 64 },
      I64: { tensors: 1, parameters: 1, bytes: 8 },
      F16: { tensors: 1, parameters: 0, bytes: 0 },
    });
  });

  it("reads a real file through openFileByteSource", async () => {
    const path = join(dir, "model.safetensors");
    await writeFile(path, buildSafetensors(TENSORS));
    const src = await openFileByteSource(path);
    try {
      expect((await readSafetensorsHeader(src)).parameterCount).toBe(1041);
    } finally {
      await src.close();
    }
  });

  it("orders tensors by offset whatever the JSON order, and keeps odd names as plain keys", async () => {
    const header = { b: { dtype: "U8", shape: [2], data_offsets: [2, 4] }, a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } };
    const h = await readSafetensorsHeader(memoryByteSource(fileWith(header, 4)));
    expect(h.tensors.map((t) => t.name)).toEqual(["a", "b"]);

    // Raw JSON text: an object literal's `__proto__` would set the prototype instead of a key.
    const json = '{"__metadata__":{"__proto__":"meta"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const p = await readSafetensorsHeader(memoryByteSource(encodeSafetensors(json, 4)));
    expect(p.tensors[0]!.name).toBe("__proto__");
    expect(Object.getPrototypeOf(p.metadata)).toBe(Object.prototype);
    expect(Object.keys(p.metadata)).toEqual(["__proto__"]);
  });

  it("accepts an empty header and sub-byte dtypes that fill whole bytes", async () => {
    expect((await readSafetensorsHeader(memoryByteSource(fileWith({}, 0)))).tensors).toEqual([]);
    const f4 = { q: { dtype: "F4", shape: [4, 2], data_offsets: [0, 4] } };
    expect((await readSafetensorsHeader(memoryByteSource(fileWith(f4, 4)))).parameterCount).toBe(8);
    await rejects(fileWith({ q: { dtype: "F4", shape: [3], data_offsets: [0, 2] } }, 2), /needs 12 bits/);
  });

  it("rejects broken length prefixes without reading past the file", async () => {
    await rejects(new Uint8Array(0), /too small/);
    await rejects(new Uint8Array(7), /too small/);
    await rejects(encodeSafetensors("", 0, { pad: false }), /header length is 0/);
    await rejects(encodeSafetensors("{}", 0, { lengthPrefix: 9n }), /past the end/);
    await rejects(encodeSafetensors("{}", 0, { lengthPrefix: 2n ** 64n - 1n }), /past the end/);
    await rejects(encodeSafetensors("{}", 0, { lengthPrefix: 2n ** 53n + 1n }), /past the end/);
    await rejects(encodeSafetensors("{}", 100), /over the 4-byte limit/, 4);
  });

  it("refuses a header over 32 MiB by default before reading it, saying the cap", async () => {
    expect(DEFAULT_MAX_SAFETENSORS_HEADER_BYTES).toBe(32 << 20);
    // An 85 MB header (what took 8 s and 1.5 GB to parse): only the 8-byte length is read.
    const n = 85_000_000;
    const file = new Uint8Array(8 + n + 16);
    new DataView(file.buffer).setBigUint64(0, BigInt(n), true);
    const src = memoryByteSource(file);
    const t0 = performance.now();
    const err = await readSafetensorsHeader(src).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidSafetensorsError);
    expect((err as Error).message).toBe("header length 85000000 is over the 33554432-byte limit (32 MiB); real safetensors headers are far smaller");
    expect(src.reads).toEqual([[0, 8]]);
    expect(performance.now() - t0).toBeLessThan(100);
  });

  it("parses a header of 100k tensors (about 10 MB) in well under two seconds", async () => {
    const parts: string[] = [];
    for (let i = 0; i < 100_000; i++) parts.push(`"model.layers.${i}.mlp.experts.${i % 64}.w":{"dtype":"BF16","shape":[2,2],"data_offsets":[${i * 8},${i * 8 + 8}]}`);
    const bytes = encodeSafetensors(`{${parts.join(",")}}`, 800_000);
    const t0 = performance.now();
    const h = await readSafetensorsHeader(memoryByteSource(bytes));
    expect(h.tensors.length).toBe(100_000);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("rejects headers that are not a UTF-8 JSON object starting with '{'", async () => {
    await rejects(encodeSafetensors(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 0), /UTF-8/);
    await rejects(encodeSafetensors(new Uint8Array([0x7b, 0xed, 0xa0, 0x80, 0x7d]), 0), /UTF-8/); // encoded surrogate
    await rejects(encodeSafetensors('{"a": ', 0), /not valid JSON/);
    await rejects(encodeSafetensors(" {}", 0), /start with/);
    await rejects(encodeSafetensors("[1,2]", 0), /start with/);
    await rejects(encodeSafetensors("{} {}", 0), /not valid JSON/);
    await rejects(encodeSafetensors(`{"a": ${"[".repeat(200_000)}${"]".repeat(200_000)}}`, 0), /not valid JSON|tensor "a"/);
  });

  it("rejects tensor entries with the wrong shape", async () => {
    const t = (entry: unknown, data = 8): Uint8Array => fileWith({ w: entry }, data);
    await rejects(t(5), /not an object/);
    await rejects(t({ dtype: "F128", shape: [2], data_offsets: [0, 8] }), /unknown dtype/);
    await rejects(t({ dtype: 32, shape: [2], data_offsets: [0, 8] }), /unknown dtype/);
    await rejects(t({ dtype: "toString", shape: [2], data_offsets: [0, 8] }), /unknown dtype/);
    await rejects(t({ dtype: "F32", shape: "2", data_offsets: [0, 8] }), /shape is not an array/);
    await rejects(t({ dtype: "F32", shape: [-2], data_offsets: [0, 8] }), /invalid dimension -2/);
    await rejects(t({ dtype: "F32", shape: [1.5], data_offsets: [0, 8] }), /invalid dimension 1.5/);
    await rejects(t({ dtype: "F32", shape: [2 ** 53], data_offsets: [0, 8] }), /invalid dimension/);
    await rejects(t({ dtype: "F32", shape: ["2"], data_offsets: [0, 8] }), /invalid dimension/);
    await rejects(t({ dtype: "F32", shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 8] }), /overflows/);
    await rejects(t({ dtype: "F32", shape: new Array(65).fill(1), data_offsets: [0, 4] }, 4), /65 dimensions/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [0] }), /pair/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [0, 8, 9] }), /pair/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: ["0", "8"] }), /not integers/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [0, null] }), /not integers/);
    // A number too large for a double: JSON.parse reads it as Infinity (JSON.stringify cannot write it, so the text is literal).
    await rejects(encodeSafetensors(`{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e400]}}`, 8), /\[0, Infinity\] are not integers/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [8, 0] }), /not ordered/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [-8, 0] }), /not ordered/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [0, 16] }), /past the 8-byte data section/);
    await rejects(t({ dtype: "F32", shape: [3], data_offsets: [0, 8] }), /needs 12 bytes but data_offsets span 8/);
    await rejects(t({ dtype: "F32", shape: [2], data_offsets: [0, 8], extra: true }, 12), /trailing/);
  });

  it("describes deeply nested values without overflowing the stack (found by the fuzz test)", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    await rejects(encodeSafetensors(`{"w":{"dtype":"F32","shape":[${deep}],"data_offsets":[0,4]}}`, 4), /invalid dimension an array of 1/);
    await rejects(encodeSafetensors(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[${deep},4]}}`, 4), /not integers/);
  });

  it("rejects gaps, overlaps and bad metadata", async () => {
    const u8 = (begin: number, end: number) => ({ dtype: "U8", shape: [end - begin], data_offsets: [begin, end] });
    await rejects(fileWith({ a: u8(0, 4), b: u8(6, 8) }, 8), /starts at 6 .* \(gap\)/);
    await rejects(fileWith({ a: u8(0, 4), b: u8(2, 6) }, 6), /starts at 2 .* \(overlap\)/);
    await rejects(fileWith({ a: u8(4, 8) }, 8), /starts at 4/);
    await rejects(fileWith({ __metadata__: { n: 1 } }, 0), /__metadata__\."n" is not a string/);
    await rejects(fileWith({ __metadata__: ["x"] }, 0), /__metadata__ is not an object/);
    await rejects(fileWith({ __metadata__: { deep: [[[[[]]]]] } }, 0), /not a string/);
  });

  it("reports a truncated file", async () => {
    const bytes = buildSafetensors(TENSORS);
    await rejects(bytes.subarray(0, bytes.length - 1), /past the .*data section/);
    const h = await readSafetensorsHeader(memoryByteSource(bytes));
    await rejects(bytes.subarray(0, 8 + h.headerBytes - 1), /past the end/);
  });

  it("is aborted by its signal", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(readSafetensorsHeader(memoryByteSource(buildSafetensors(TENSORS)), { signal: ac.signal })).rejects.toThrow(/abort/i);
  });
});
