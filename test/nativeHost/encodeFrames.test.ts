import { describe, expect, it } from "vitest";
import { encodeFrames } from "../../src/nativeHost/encodeFrames.js";
import { FrameReader } from "../../src/nativeHost/FrameReader.js";
import { MAX_OUTGOING_BYTES } from "../../src/nativeHost/nativeMessagingLimits.js";

function decode(frames: Buffer[]): Record<string, unknown>[] {
  const reader = new FrameReader({ maxBytes: 64 * 1024 * 1024 });
  return frames.flatMap((f) => reader.push(f)).map((e) => (e.kind === "frame" ? (JSON.parse(e.body.toString()) as Record<string, unknown>) : {}));
}

/** Joins parts the way an extension does: `data` in `part` order, then JSON.parse. */
function rejoin(messages: Record<string, unknown>[]): unknown {
  const sorted = [...messages].sort((a, b) => (a.part as number) - (b.part as number));
  return JSON.parse(sorted.map((m) => m.data as string).join(""));
}

describe("encodeFrames", () => {
  it("sends a message that fits as one frame", () => {
    const frames = encodeFrames({ id: 1, ok: true, result: "x".repeat(1000) });
    expect(frames).toHaveLength(1);
    expect(decode(frames)).toEqual([{ id: 1, ok: true, result: "x".repeat(1000) }]);
  });

  it("splits a larger message into ordered parts of at most 1 MB that join to it", () => {
    // Quotes, backslashes, control characters, multi-byte text and astral characters: JSON escaping and UTF-8
    // make the parts' sizes differ from their character counts.
    const pieces = ['"', "\\", "\n", "\u0001", "é", "漢", "😀", "a"];
    let text = "";
    let seed = 7;
    while (text.length < 3_000_000) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      text += pieces[seed % pieces.length];
    }
    const message = { id: "big", ok: true, result: { text, vector: Array.from({ length: 1000 }, (_, i) => i / 7) } };
    const frames = encodeFrames(message);
    expect(frames.length).toBeGreaterThan(3);
    for (const f of frames) expect(f.length - 4).toBeLessThanOrEqual(MAX_OUTGOING_BYTES);
    const parts = decode(frames);
    parts.forEach((p, i) => {
      expect(p).toMatchObject({ id: "big", part: i, parts: frames.length });
    });
    expect(rejoin(parts)).toEqual(message);
  });

  it("never splits a surrogate pair, even at a tiny limit", () => {
    const message = { id: 2, ok: true, result: "😀".repeat(500) };
    const frames = encodeFrames(message, 1200);
    expect(frames.length).toBeGreaterThan(1);
    const parts = decode(frames);
    for (const p of parts) expect(p.data as string).not.toMatch(/[\ud800-\udbff]$/);
    expect(rejoin(parts)).toEqual(message);
  });
});
