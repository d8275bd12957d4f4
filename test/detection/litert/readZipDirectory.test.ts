import { describe, expect, it } from "vitest";
import { InvalidLiteRtError } from "../../../src/detection/litert/InvalidLiteRtError.js";
import { readStoredEntryHead, readZipDirectory } from "../../../src/detection/litert/readZipDirectory.js";
import { memorySource, rng, type ReadStats } from "../onnx/memoryFs.js";
import { writeZip } from "./writeZip.js";

const enc = new TextEncoder();

async function expectInvalid(bytes: Uint8Array | { size: number; parts: { offset: number; bytes: Uint8Array }[] }): Promise<void> {
  await expect(readZipDirectory(memorySource(bytes))).rejects.toBeInstanceOf(InvalidLiteRtError);
}

/** Rewrites the end record of a ZIP without comment as Zip64: a Zip64 end record and locator, and 0xFFFF/0xFFFFFFFF markers. */
function toZip64(zip: Uint8Array): Uint8Array {
  const eocdAt = zip.length - 22;
  const v = new DataView(zip.buffer, zip.byteOffset);
  const count = v.getUint16(eocdAt + 10, true);
  const cdSize = v.getUint32(eocdAt + 12, true);
  const cdOffset = v.getUint32(eocdAt + 16, true);
  const rec = new DataView(new ArrayBuffer(56));
  rec.setUint32(0, 0x06064b50, true);
  rec.setBigUint64(4, 44n, true);
  rec.setBigUint64(24, BigInt(count), true);
  rec.setBigUint64(32, BigInt(count), true);
  rec.setBigUint64(40, BigInt(cdSize), true);
  rec.setBigUint64(48, BigInt(cdOffset), true);
  const loc = new DataView(new ArrayBuffer(20));
  loc.setUint32(0, 0x07064b50, true);
  loc.setBigUint64(8, BigInt(eocdAt), true);
  loc.setUint32(16, 1, true);
  const eocd = Uint8Array.from(zip.subarray(eocdAt));
  const e = new DataView(eocd.buffer);
  e.setUint16(8, 0xffff, true);
  e.setUint16(10, 0xffff, true);
  e.setUint32(12, 0xffffffff, true);
  e.setUint32(16, 0xffffffff, true);
  const out = new Uint8Array(eocdAt + 56 + 20 + 22);
  out.set(zip.subarray(0, eocdAt));
  out.set(new Uint8Array(rec.buffer), eocdAt);
  out.set(new Uint8Array(loc.buffer), eocdAt + 56);
  out.set(eocd, eocdAt + 76);
  return out;
}

describe("readZipDirectory", () => {
  const zip = writeZip(
    [
      { name: "TF_LITE_PREFILL_DECODE", data: enc.encode("....TFL3 model bytes") },
      { name: "TOKENIZER_MODEL", data: enc.encode("spm") },
    ],
    "a comment",
  );

  it("lists entries from the central directory and reads a stored entry's first bytes", async () => {
    const src = memorySource(zip);
    const dir = await readZipDirectory(src);
    expect(dir.zip64).toBe(false);
    expect(dir.entries.map((e) => [e.name, e.method, e.size])).toEqual([
      ["TF_LITE_PREFILL_DECODE", 0, 20],
      ["TOKENIZER_MODEL", 0, 3],
    ]);
    const head = await readStoredEntryHead(src, dir.entries[0]!, 8);
    expect(new TextDecoder().decode(head)).toBe("....TFL3");
    expect(await readStoredEntryHead(src, { ...dir.entries[0]!, method: 8 }, 8)).toBeNull();
  });

  it("reads Zip64 end records", async () => {
    const plain = writeZip([
      { name: "TF_LITE_PREFILL_DECODE", data: enc.encode("....TFL3") },
      { name: "TOKENIZER_MODEL", data: enc.encode("spm") },
    ]);
    const dir = await readZipDirectory(memorySource(toZip64(plain)));
    expect(dir.zip64).toBe(true);
    expect(dir.entries.map((e) => e.name)).toEqual(["TF_LITE_PREFILL_DECODE", "TOKENIZER_MODEL"]);
  });

  it("reads only the tail of a large archive", async () => {
    // A 3 GB bundle: 1 GB of entry data is never touched; the directory sits in the last 64 KiB.
    const size = 3 * 2 ** 30;
    const body = writeZip([{ name: "model.tflite", data: new Uint8Array(0) }]);
    // Move the directory and end record to the end of the file and point them at a local header at 0.
    const cdAt = 30 + "model.tflite".length;
    const tail = body.subarray(cdAt);
    const t = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    const newCd = size - tail.length;
    t.setUint32(tail.length - 22 + 16, newCd, true);
    const stats: ReadStats = { reads: 0, bytesRead: 0, perFile: new Map() };
    const dir = await readZipDirectory(
      memorySource(
        {
          size,
          parts: [
            { offset: 0, bytes: body.subarray(0, cdAt) },
            { offset: newCd, bytes: tail },
          ],
        },
        stats,
      ),
    );
    expect(dir.entries.map((e) => e.name)).toEqual(["model.tflite"]);
    expect(stats.reads).toBe(1);
    expect(stats.bytesRead).toBeLessThanOrEqual(22 + 0xffff);
  });

  it("refuses corrupt archives with a typed error", async () => {
    await expectInvalid(enc.encode("PK\x03\x04 not really a zip"));
    await expectInvalid(zip.subarray(0, zip.length - 30)); // end record cut
    const badCount = Uint8Array.from(zip);
    new DataView(badCount.buffer).setUint16(badCount.length - 22 - 9 + 10, 500, true);
    await expectInvalid(badCount);
    const badOffset = Uint8Array.from(zip);
    new DataView(badOffset.buffer).setUint32(badOffset.length - 22 - 9 + 16, 0x7fffffff, true);
    await expectInvalid(badOffset);
    const zip64NoLocator = Uint8Array.from(zip);
    new DataView(zip64NoLocator.buffer).setUint32(zip64NoLocator.length - 22 - 9 + 16, 0xffffffff, true);
    await expectInvalid(zip64NoLocator);
    await expect(readZipDirectory(memorySource(zip), { maxEntries: 1 })).rejects.toThrow(/more than 1/);
  });

  it("mutated archives end in a listing or a typed error (seeded, 2000 cases)", async () => {
    const rand = rng(99);
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(zip);
      for (let k = 0; k < 3; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      const r = await readZipDirectory(memorySource(b)).then(
        () => null,
        (e: unknown) => e,
      );
      if (r !== null) expect(r).toBeInstanceOf(InvalidLiteRtError);
    }
  });
});
