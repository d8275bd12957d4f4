import { describe, expect, it } from "vitest";
import { sniffWeightsMagic } from "../../../src/detection/transformers/sniffWeightsMagic.js";
import { buildSafetensors } from "../safetensors/writeSafetensors.js";
import { GGUF_BYTES, RAW_PICKLE, TORCH_ZIP } from "./hfFolder.js";

describe("sniffWeightsMagic", () => {
  it("reads the signature, not the name", () => {
    expect(sniffWeightsMagic(TORCH_ZIP)).toBe("torch-zip");
    expect(sniffWeightsMagic(RAW_PICKLE)).toBe("pickle");
    for (const proto of [2, 3, 4, 5]) expect(sniffWeightsMagic(Uint8Array.from([0x80, proto]))).toBe("pickle");
    expect(sniffWeightsMagic(Uint8Array.from([0x80, 1]))).toBe("unknown");
    expect(sniffWeightsMagic(Uint8Array.from([0x80, 6]))).toBe("unknown");
    expect(sniffWeightsMagic(GGUF_BYTES)).toBe("gguf");
    expect(sniffWeightsMagic(buildSafetensors([]).subarray(0, 16))).toBe("safetensors");
    expect(sniffWeightsMagic(new Uint8Array(0))).toBe("unknown");
    expect(sniffWeightsMagic(new TextEncoder().encode("PK"))).toBe("unknown");
  });
});
