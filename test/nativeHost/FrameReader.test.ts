import { describe, expect, it } from "vitest";
import { FrameReader } from "../../src/nativeHost/FrameReader.js";
import { encodeFrame } from "../../src/nativeHost/encodeFrames.js";

const frame = (obj: unknown) => encodeFrame(JSON.stringify(obj));

describe("FrameReader", () => {
  it("splits frames whatever the chunking, one byte at a time included", () => {
    const bytes = Buffer.concat([frame({ a: 1 }), frame({ b: "é😀" }), frame([])]);
    for (const size of [1, 3, 5, 7, bytes.length]) {
      const reader = new FrameReader({ maxBytes: 1024 });
      const bodies: string[] = [];
      for (let i = 0; i < bytes.length; i += size) {
        for (const e of reader.push(bytes.subarray(i, i + size))) if (e.kind === "frame") bodies.push(e.body.toString());
      }
      expect(bodies).toEqual(['{"a":1}', '{"b":"é😀"}', "[]"]);
      expect(reader.end()).toBeNull();
    }
  });

  it("reads the length in the machine's byte order", () => {
    const f = frame({ x: 1 });
    const expected = new Uint8Array(new Uint32Array([7]).buffer);
    expect([...f.subarray(0, 4)]).toEqual([...expected]);
  });

  it("skips an oversize frame without buffering it and goes on with the next", () => {
    const reader = new FrameReader({ maxBytes: 16 });
    const big = Buffer.alloc(4 + 1000, 0x61);
    big.writeUInt32LE(1000, 0);
    const events = [...reader.push(big.subarray(0, 10)), ...reader.push(big.subarray(10)), ...reader.push(frame({ ok: 1 }))];
    expect(events.map((e) => e.kind)).toEqual(["oversize", "frame"]);
    expect(events[0]).toEqual({ kind: "oversize", length: 1000 });
  });

  it("reports a frame cut short at the end of the stream", () => {
    const reader = new FrameReader({ maxBytes: 1024 });
    const f = frame({ hello: "world" });
    expect(reader.push(f.subarray(0, 9))).toEqual([]);
    expect(reader.end()).toEqual({ expected: f.length - 4, received: 5 });
    const header = new FrameReader({ maxBytes: 1024 });
    header.push(Buffer.from([1, 0]));
    expect(header.end()).toEqual({ expected: 4, received: 2 });
  });

  it("takes a zero-length frame as an empty message", () => {
    const reader = new FrameReader({ maxBytes: 1024 });
    expect(reader.push(Buffer.alloc(4))).toEqual([{ kind: "frame", body: Buffer.alloc(0) }]);
  });
});
