import { describe, expect, it } from "vitest";
import type { ModelFileEntry } from "../../src/detection/ModelFileSystem.js";
import { InvalidPullSourceError } from "../../src/store/errors.js";
import { GGUF_QUANT_PREFERENCE, quantFromFileName, selectGgufFiles } from "../../src/store/selectGgufFiles.js";

const files = (...paths: string[]): ModelFileEntry[] => paths.map((path, i) => ({ path, size: 100 + i }));
const paths = (entries: ModelFileEntry[]) => entries.map((e) => e.path);

describe("quantFromFileName", () => {
  it("reads the quantisation from the usual naming styles, upper-cased", () => {
    expect(quantFromFileName("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")).toBe("Q4_K_M");
    expect(quantFromFileName("llama-3-8b.Q8_0.gguf")).toBe("Q8_0");
    expect(quantFromFileName("phi-3-mini-4k-instruct-q5_k_s.gguf")).toBe("Q5_K_S");
    expect(quantFromFileName("sub/dir/model-IQ4_XS-00001-of-00003.gguf")).toBe("IQ4_XS");
    expect(quantFromFileName("model-bf16.gguf")).toBe("BF16");
  });

  it("normalises FP16/FP32 and gives null when no quantisation is named", () => {
    expect(quantFromFileName("model.fp16.gguf")).toBe("F16");
    expect(quantFromFileName("model-FP32.gguf")).toBe("F32");
    expect(quantFromFileName("model.gguf")).toBeNull();
    expect(quantFromFileName("Qwen2-7B.gguf")).toBeNull(); // a version number is not a quantisation
  });

  it("takes the last token when a name carries several", () => {
    expect(quantFromFileName("Q8_0-distilled-Q4_0.gguf")).toBe("Q4_0");
  });
});

describe("selectGgufFiles", () => {
  it("without a wish, takes the first quantisation in the preference order", () => {
    const listing = files("m-Q8_0.gguf", "m-F16.gguf", "m-Q4_K_M.gguf", "m-Q2_K.gguf", "README.md");
    const choice = selectGgufFiles(listing, null, "acme/m");
    expect(choice.quant).toBe("Q4_K_M");
    expect(paths(choice.files)).toEqual(["m-Q4_K_M.gguf"]);
    expect(GGUF_QUANT_PREFERENCE[0]).toBe("Q4_K_M");
  });

  it("prefers larger-and-better over smaller, and unknown names come last (ties by path)", () => {
    expect(selectGgufFiles(files("m-Q2_K.gguf", "m-Q6_K.gguf"), null, "r").quant).toBe("Q6_K");
    expect(selectGgufFiles(files("z.gguf", "a.gguf", "m-F32.gguf"), null, "r").quant).toBe("F32");
    const unnamed = selectGgufFiles(files("z.gguf", "a.gguf"), null, "r");
    expect(unnamed.quant).toBeNull();
    expect(unnamed.group.main.path).toBe("a.gguf");
  });

  it("takes a named quantisation in any case, or a named file", () => {
    const listing = files("m-Q8_0.gguf", "m-Q4_K_M.gguf");
    expect(selectGgufFiles(listing, "q8_0", "r").group.main.path).toBe("m-Q8_0.gguf");
    expect(selectGgufFiles(listing, "m-Q8_0.gguf", "r").quant).toBe("Q8_0");
  });

  it("a split model is fetched whole, whichever of its parts is named", () => {
    const listing = files("big-Q4_K_M-00002-of-00003.gguf", "big-Q4_K_M-00001-of-00003.gguf", "big-Q4_K_M-00003-of-00003.gguf", "small-Q8_0.gguf");
    const byPart = selectGgufFiles(listing, "big-Q4_K_M-00002-of-00003.gguf", "r");
    expect(byPart.group.main.path).toBe("big-Q4_K_M-00001-of-00003.gguf");
    expect(paths(byPart.files)).toEqual(["big-Q4_K_M-00001-of-00003.gguf", "big-Q4_K_M-00002-of-00003.gguf", "big-Q4_K_M-00003-of-00003.gguf"]);
    expect(paths(selectGgufFiles(listing, null, "r").files)).toHaveLength(3);
  });

  it("the one vision projector of a repo goes with whichever quantisation is pulled", () => {
    const listing = files("v-Q4_K_M.gguf", "v-Q8_0.gguf", "mmproj-v-f16.gguf");
    expect(paths(selectGgufFiles(listing, "Q8_0", "r").files)).toEqual(["v-Q8_0.gguf", "mmproj-v-f16.gguf"]);
    expect(paths(selectGgufFiles(listing, null, "r").files)).toEqual(["v-Q4_K_M.gguf", "mmproj-v-f16.gguf"]);
  });

  it("a projector in another folder is not taken, nor one of two", () => {
    expect(paths(selectGgufFiles(files("v-Q4_K_M.gguf", "v-Q8_0.gguf", "other/mmproj-f16.gguf"), null, "r").files)).toEqual(["v-Q4_K_M.gguf"]);
    const two = files("v-Q4_K_M.gguf", "v-Q8_0.gguf", "mmproj-a-f16.gguf", "mmproj-b-f16.gguf");
    expect(paths(selectGgufFiles(two, null, "r").files)).toEqual(["v-Q4_K_M.gguf"]);
  });

  it("refuses what it cannot pick, saying what there is", () => {
    const listing = files("a/m-Q4_K_M.gguf", "b/m-Q4_K_M.gguf", "m-Q8_0.gguf");
    expect(() => selectGgufFiles(listing, "Q4_K_M", "acme/m")).toThrow(/acme\/m has 2 Q4_K_M files \(a\/m-Q4_K_M.gguf, b\/m-Q4_K_M.gguf\); name one file/);
    expect(() => selectGgufFiles(listing, "Q5_K_M", "acme/m")).toThrow(/no file or quantisation 'Q5_K_M'; available: Q4_K_M, Q4_K_M, Q8_0/);
    expect(() => selectGgufFiles(files("README.md", "mmproj-f16.gguf"), null, "acme/m")).toThrow(InvalidPullSourceError);
    expect(() => selectGgufFiles([], null, "acme/m")).toThrow(/acme\/m has no GGUF model files/);
  });
});
