import { describe, expect, it } from "vitest";
import type { ByteSource } from "../../../src/detection/gguf/ByteSource.js";
import { InvalidGgufError, readGgufHeader } from "../../../src/detection/gguf/readGgufHeader.js";
import { GgufWriter, GgufValueType } from "../../fixtures/gguf/GgufWriter.js";
import { seededRandom } from "../../fixtures/gguf/seededRandom.js";

const CASES = 12_000;

function base(): Buffer {
  const w = new GgufWriter()
    .addString("general.architecture", "llama")
    .addString("general.name", "fuzz")
    .addUint32("llama.context_length", 2048)
    .addUint64("big", 123456789n)
    .addFloat32("llama.rope.freq_base", 10000)
    .addBool("b", true)
    .addArray(
      "tokenizer.ggml.tokens",
      GgufValueType.STRING,
      Array.from({ length: 90 }, (_, i) => `t${i}`),
    )
    .addArray(
      "tokenizer.ggml.scores",
      GgufValueType.FLOAT32,
      Array.from({ length: 90 }, (_, i) => i / 10),
    )
    .addString("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
  for (let i = 0; i < 6; i++) w.addTensorF32(`blk.${i}.w`, [4, 2], new Float32Array(8));
  return w.toBuffer();
}

function source(buf: Uint8Array, reads: { offset: number; length: number }[]): ByteSource {
  return {
    size: buf.length,
    async read(offset, length) {
      reads.push({ offset, length });
      return buf.subarray(offset, Math.min(buf.length, offset + length));
    },
    async close() {},
  };
}

function mutate(input: Buffer, rnd: () => number): Buffer {
  let buf = Buffer.from(input);
  const steps = 1 + Math.floor(rnd() * 4);
  for (let s = 0; s < steps; s++) {
    const at = Math.floor(rnd() * buf.length);
    switch (Math.floor(rnd() * 7)) {
      case 0: // flip a byte
        buf[at] = Math.floor(rnd() * 256);
        break;
      case 1: // a huge or absurd u64 where a count or length may be
        if (at + 8 <= buf.length) buf.writeBigUInt64LE([0xffffffffffffffffn, 1n << 40n, 1n << 31n, BigInt(buf.length), 0n][Math.floor(rnd() * 5)]!, at);
        break;
      case 2: // truncate
        buf = buf.subarray(0, at);
        break;
      case 3: // delete a run
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + Math.floor(rnd() * 16)))]);
        break;
      case 4: // insert random bytes
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 16) }, () => Math.floor(rnd() * 256))), buf.subarray(at)]);
        break;
      case 5: // a u32 type id out of range
        if (at + 4 <= buf.length) buf.writeUInt32LE(Math.floor(rnd() * 64), at);
        break;
      default: // the counts in the fixed header
        if (buf.length >= 24) buf.writeBigUInt64LE(BigInt(Math.floor(rnd() * 2 ** 32)) * BigInt(Math.floor(rnd() * 2 ** 20)), 8 + 8 * Math.floor(rnd() * 2));
    }
  }
  return buf;
}

describe("readGgufHeader fuzz", () => {
  it(`ends every one of ${CASES} mutated headers in a result or a typed error, quickly`, async () => {
    const valid = base();
    const rng = seededRandom(20261126);
    let ok = 0;
    let typed = 0;
    let slowest = 0;
    const started = performance.now();
    for (let i = 0; i < CASES; i++) {
      const buf = mutate(valid, () => rng.next());
      const reads: { offset: number; length: number }[] = [];
      const t0 = performance.now();
      try {
        await readGgufHeader(source(buf, reads));
        ok++;
      } catch (err) {
        if (!(err instanceof InvalidGgufError)) throw new Error(`case ${i}: ${String(err)}`, { cause: err });
        typed++;
      }
      slowest = Math.max(slowest, performance.now() - t0);
      for (const r of reads) expect(r.offset).toBeLessThanOrEqual(buf.length);
    }
    const total = performance.now() - started;
    expect(ok + typed).toBe(CASES);
    expect(typed).toBeGreaterThan(CASES / 4);
    expect(slowest).toBeLessThan(250);
    expect(total).toBeLessThan(30_000);
  });
});
