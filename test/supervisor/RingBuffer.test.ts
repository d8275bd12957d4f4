import { describe, expect, it } from "vitest";
import { LineSplitter } from "../../src/supervisor/LineSplitter.js";
import { RingBuffer } from "../../src/supervisor/RingBuffer.js";

describe("RingBuffer", () => {
  it("keeps the last `capacity` items, oldest first", () => {
    const ring = new RingBuffer<number>(3);
    expect(ring.toArray()).toEqual([]);
    for (let i = 1; i <= 7; i++) ring.push(i);
    expect(ring.toArray()).toEqual([5, 6, 7]);
    expect(ring.size).toBe(3);
    expect(ring.total).toBe(7);
    expect(ring.last(2)).toEqual([6, 7]);
    expect(ring.last(10)).toEqual([5, 6, 7]);
    expect(ring.last(0)).toEqual([]);
  });

  it("returns what came after a mark, as far as it still holds it", () => {
    const ring = new RingBuffer<string>(4);
    ring.push("old");
    const mark = ring.total;
    expect(ring.since(mark)).toEqual([]);
    ring.push("a");
    ring.push("b");
    expect(ring.since(mark)).toEqual(["a", "b"]);
    for (const x of ["c", "d", "e"]) ring.push(x);
    expect(ring.since(mark)).toEqual(["b", "c", "d", "e"]);
  });

  it("rejects a capacity below 1", () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
  });
});

describe("LineSplitter", () => {
  const split = (chunks: (string | Buffer)[], maxBytes?: number) => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), maxBytes);
    for (const c of chunks) s.push(c);
    s.flush();
    return lines;
  };

  it("splits on newlines across chunks, drops \\r, flushes the last partial line", () => {
    expect(split(["a\r\nb", "c\n\nd"])).toEqual(["a", "bc", "", "d"]);
  });

  it("keeps a multi-byte character split across chunks whole", () => {
    const euro = Buffer.from("€\n"); // e2 82 ac 0a
    expect(split([euro.subarray(0, 1), euro.subarray(1, 2), euro.subarray(2)])).toEqual(["€"]);
  });

  it("decodes invalid UTF-8 with replacement characters", () => {
    expect(split([Buffer.from([0x41, 0xc3, 0x28, 0x0a, 0x00, 0xff])])).toEqual(["A\uFFFD(", "\u0000\uFFFD"]);
  });

  it("cuts lines over the cap and marks them", () => {
    expect(split(["abcdefghij", "klmn\nok\n"], 4)).toEqual(["abcd …[truncated]", "ok"]);
  });
});
