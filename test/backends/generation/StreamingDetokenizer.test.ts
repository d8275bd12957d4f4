import { describe, expect, it } from "vitest";
import { StreamingDetokenizer } from "../../../src/backends/generation/StreamingDetokenizer.js";

/** Tokens are single bytes here, the worst case for multi-byte characters. */
const decoder = new TextDecoder();
const detok = (tokens: readonly number[]) => decoder.decode(new Uint8Array(tokens));

describe("StreamingDetokenizer", () => {
  it("never splits a multi-byte character across pieces", () => {
    const bytes = [...new TextEncoder().encode("a中é🙂b")];
    const d = new StreamingDetokenizer<number>(detok);
    const pieces = bytes.map((b) => d.push(b)).concat(d.flush());
    expect(pieces.join("")).toBe("a中é🙂b");
    for (const p of pieces) expect(p).not.toContain("\uFFFD");
    expect(pieces.filter((p) => p.length > 0)).toEqual(["a", "中", "é", "🙂", "b"]);
  });
  it("gives up holding after maxPending tokens (a genuinely invalid byte)", () => {
    const d = new StreamingDetokenizer<number>(detok, 3);
    expect(d.push(0xff)).toBe("");
    expect(d.push(0xfe)).toBe("");
    expect(d.push(0x41)).toBe("\uFFFD\uFFFDA");
  });
  it("flushes an incomplete character at the end", () => {
    const d = new StreamingDetokenizer<number>(detok);
    expect(d.push(0xe4)).toBe("");
    expect(d.flush()).toBe("\uFFFD");
    expect(d.flush()).toBe("");
  });
  it("passes the previous tokens as context", () => {
    const seen: number[][] = [];
    const d = new StreamingDetokenizer<number>(
      (t, last) => {
        seen.push([...last]);
        return String(t.length);
      },
      8,
      2,
    );
    d.push(1);
    d.push(2);
    d.push(3);
    expect(seen).toEqual([[], [1], [1, 2]]);
  });
});
