import { describe, expect, it } from "vitest";
import { InvalidLiteRtError } from "../../../src/detection/litert/InvalidLiteRtError.js";
import { readLlmMetadata } from "../../../src/detection/litert/readLlmMetadata.js";

const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
};
const bytes = (text: string) => [...new TextEncoder().encode(text)];
const lenField = (field: number, data: number[]) => [...varint(field * 8 + 2), ...varint(data.length), ...data];

describe("readLlmMetadata", () => {
  it("finds the chat template (field 7) and the context (field 5) among other fields", () => {
    const stop = lenField(2, lenField(1, [8, 2])); // stop_tokens { token_ids { ids: 2 } }
    const msg = new Uint8Array([...stop, ...varint(5 * 8), ...varint(256), ...lenField(7, bytes("{{ messages }}")), ...varint(11 * 8), 1, 0x51, 1, 2, 3, 4]);
    // 0x51 = field 10, wire type 1: eight bytes follow; the message ends mid-field, so here it must throw.
    expect(() => readLlmMetadata(msg)).toThrow(InvalidLiteRtError);
    const ok = new Uint8Array([...stop, ...varint(5 * 8), ...varint(256), ...lenField(7, bytes("{{ messages }}")), ...varint(11 * 8), 1]);
    expect(readLlmMetadata(ok)).toEqual({ hasJinjaTemplate: true, maxNumTokens: 256 });
  });

  it("an empty message has neither", () => {
    expect(readLlmMetadata(new Uint8Array())).toEqual({ hasJinjaTemplate: false, maxNumTokens: null });
  });

  it("refuses what is not a protobuf message: field 0, group wire types, lengths past the end, endless varints", () => {
    for (const bad of [[0x00], [0x0b], [0x3a, 0x05, 0x41], [0x28, ...new Array<number>(11).fill(0xff)]]) {
      expect(() => readLlmMetadata(new Uint8Array(bad)), JSON.stringify(bad)).toThrow(InvalidLiteRtError);
    }
  });
});
