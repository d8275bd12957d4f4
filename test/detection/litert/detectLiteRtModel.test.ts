import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectSource } from "../../../src/detection/detectSource.js";
import { chooseEngine } from "../../../src/detection/chooseEngine.js";
import { formatDetectionSchema, liteRtDetails, type FormatDetection } from "../../../src/core/detectionSchema.js";
import { detectLiteRtModel } from "../../../src/detection/litert/detectLiteRtModel.js";
import { InvalidLiteRtError } from "../../../src/detection/litert/InvalidLiteRtError.js";
import { readLitertlmHeader } from "../../../src/detection/litert/readLitertlmHeader.js";
import { readTfliteSummary } from "../../../src/detection/litert/readTfliteSummary.js";
import { MemoryModelFileSystem, memorySource, rng, type MemoryFile } from "../onnx/memoryFs.js";
import { writeLitertlm, writeTflite } from "./writeFlatBuffer.js";
import { writeZip } from "./writeZip.js";

/** Every result fits the shared schema, and parsing its JSON (as the detection cache does) gives the same JSON back. */
function expectCacheRoundTrip(d: FormatDetection): void {
  const json = JSON.stringify(d);
  expect(JSON.stringify(formatDetectionSchema.parse(JSON.parse(json)))).toBe(json);
}

async function detect(files: Record<string, MemoryFile>): Promise<{ d: FormatDetection | null; fs: MemoryModelFileSystem }> {
  const fs = new MemoryModelFileSystem(files);
  const d = await detectLiteRtModel(fs, await fs.list());
  if (d) expectCacheRoundTrip(d);
  return { d, fs };
}

const llmTflite = writeTflite({
  description: "MLIR Converted.",
  subgraphs: ["prefill", "decode"],
  signatures: [
    { key: "prefill", inputs: ["tokens", "input_pos", "kv_cache_k_0"], outputs: ["kv_cache_k_0"] },
    { key: "decode", inputs: ["tokens", "input_pos"], outputs: ["logits"] },
  ],
});

describe("readTfliteSummary", () => {
  it("reads description, subgraphs, metadata names and signatures", async () => {
    const s = await readTfliteSummary(
      memorySource(
        writeTflite({
          description: "TOCO Converted.",
          metadata: ["min_runtime_version", "TFLITE_METADATA"],
          signatures: [{ key: "serving_default", inputs: ["image"], outputs: ["probs"] }],
        }),
      ),
    );
    expect(s).toMatchObject({
      version: 3,
      description: "TOCO Converted.",
      subgraphCount: 1,
      subgraphNames: ["main"],
      metadata: ["min_runtime_version", "TFLITE_METADATA"],
      signatures: [{ key: "serving_default", inputs: ["image"], outputs: ["probs"] }],
    });
  });

  it("reads one block of a large model", async () => {
    const big = writeTflite({ signatures: [{ key: "decode" }], padding: 0 });
    const size = 2 * 2 ** 30;
    const stats = { reads: 0, bytesRead: 0, perFile: new Map<string, number>() };
    const s = await readTfliteSummary(memorySource({ size, parts: [{ offset: 0, bytes: big }] }, stats));
    expect(s.signatures.map((x) => x.key)).toEqual(["decode"]);
    expect(stats.bytesRead).toBe(16 << 10);
  });

  it("refuses a buffer without TFL3 and offsets outside the file", async () => {
    await expect(readTfliteSummary(memorySource(new Uint8Array(64)))).rejects.toBeInstanceOf(InvalidLiteRtError);
    const bad = Uint8Array.from(llmTflite);
    new DataView(bad.buffer).setUint32(0, 0x7ffffff0, true);
    await expect(readTfliteSummary(memorySource(bad))).rejects.toThrow(/root table offset 2147483632 is outside the model/);
  });

  it("mutated models end in a summary or a typed error (seeded, 2000 cases)", async () => {
    const rand = rng(7);
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(llmTflite);
      for (let k = 0; k < 3; k++) b[8 + Math.floor(rand() * (b.length - 8))] = Math.floor(rand() * 256);
      const r = await readTfliteSummary(memorySource(b)).then(
        () => null,
        (e: unknown) => e,
      );
      if (r !== null) expect(r).toBeInstanceOf(InvalidLiteRtError);
    }
  });
});

describe("readLitertlmHeader", () => {
  it("reads the version, system metadata and sections", async () => {
    const file = writeLitertlm({
      version: [1, 4, 0],
      system: { Authors: "ODML" },
      sections: [{ dataType: 4 }, { dataType: 3, modelType: "tf_lite_prefill_decode" }, { dataType: 5 }],
    });
    const h = await readLitertlmHeader(memorySource(file));
    expect(h.version).toBe("1.4.0");
    expect(h.systemMetadata).toEqual({ Authors: "ODML" });
    expect(h.sections.map((s) => [s.dataType, s.items["model_type"] ?? null])).toEqual([
      ["SP_Tokenizer", null],
      ["TFLiteModel", "tf_lite_prefill_decode"],
      ["LlmMetadataProto", null],
    ]);
    // Laid out back to back after the header, 16-byte aligned.
    expect(h.sections[0]!.begin).toBe(Math.ceil(h.headerEnd / 16) * 16);
    expect(h.sections[1]!.begin).toBe(h.sections[0]!.end);
    expect(h.sections[2]!.end).toBeLessThanOrEqual(file.length);
  });

  it("refuses a missing magic and an implausible header end", async () => {
    await expect(readLitertlmHeader(memorySource(new Uint8Array(64)))).rejects.toThrow(/LITERTLM magic/);
    const bad = writeLitertlm({ sections: [] });
    new DataView(bad.buffer).setBigUint64(24, 1n << 40n, true);
    await expect(readLitertlmHeader(memorySource(bad))).rejects.toThrow(/header end/);
  });

  it("mutated headers end in a header or a typed error (seeded, 2000 cases)", async () => {
    const base = writeLitertlm({ sections: [{ dataType: 3, modelType: "tf_lite_prefill_decode" }, { dataType: 4 }] });
    const rand = rng(11);
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(base);
      for (let k = 0; k < 3; k++) b[32 + Math.floor(rand() * (b.length - 32))] = Math.floor(rand() * 256);
      const r = await readLitertlmHeader(memorySource(b)).then(
        () => null,
        (e: unknown) => e,
      );
      if (r !== null) expect(r).toBeInstanceOf(InvalidLiteRtError);
    }
  });
});

describe("detectLiteRtModel", () => {
  it("a minimal TFL3 file: LiteRT with no task hint", async () => {
    const { d } = await detect({ "model.tflite": writeTflite({}), "labels.txt": "cat\ndog" });
    expect(d!.format).toBe("litert");
    expect(d!.task).toBe("unknown");
    expect(d!.reason).toBe("model.tflite: TFLite FlatBuffer (TFL3); no task hint (no signatures)");
    expect(d!.files).toEqual([
      { path: "labels.txt", size: 7, role: "other" },
      { path: "model.tflite", size: expect.any(Number), role: "weights" },
    ]);
    expect(d!.details).toMatchObject({ primaryFile: "model.tflite", container: "tflite", tflite: { version: 3 } });
  });

  it("prefill/decode signatures mean an LLM", async () => {
    const { d } = await detect({ "gemma3-1b-it-q8_ekv2048.tflite": llmTflite, "tokenizer.model": "spm" });
    expect(d!.task).toBe("text-generation");
    expect(d!.reason).toContain("signatures prefill, decode");
    expect(d!.quantization).toBe("int8");
    expect(d!.contextLength).toBe(2048);
    expect(d!.files.find((f) => f.path === "tokenizer.model")?.role).toBe("tokenizer");
  });

  it("magic bytes win over the extension", async () => {
    expect((await detect({ "model.tflite": new Uint8Array(64) })).d).toBeNull();
    const { d } = await detect({ "weights.bin": writeTflite({ metadata: ["odml.infra.proto.LlmParameters"] }) });
    expect(liteRtDetails(d!)?.primaryFile).toBe("weights.bin");
    expect(d!.task).toBe("text-generation");
    const mixed = (await detect({ "a.tflite": "not a flatbuffer at all", "b.tflite": writeTflite({}) })).d!;
    expect(liteRtDetails(mixed)?.primaryFile).toBe("b.tflite");
    expect(mixed.warnings).toEqual(["a.tflite is named like a LiteRT model but has no TFL3 identifier, ZIP or LITERTLM magic: ignored"]);
  });

  it("does not probe unrelated files", async () => {
    const { d, fs } = await detect({
      "config.json": "{}",
      "model.safetensors": new Uint8Array(64),
      "pytorch_model.bin": new Uint8Array(64),
      "model.onnx": new Uint8Array(64),
    });
    expect(d).toBeNull();
    expect(fs.stats.reads).toBe(0);
  });

  it("a MediaPipe LLM .task bundle: models and tokenizer from the ZIP directory", async () => {
    const task = writeZip([
      { name: "TF_LITE_PREFILL_DECODE", data: llmTflite },
      { name: "TOKENIZER_MODEL", data: new TextEncoder().encode("sentencepiece") },
      { name: "METADATA", data: new Uint8Array(12) },
    ]);
    const { d, fs } = await detect({ "Gemma3-1B-IT_multi-prefill-seq_q4_ekv1280.task": task });
    expect(d!.task).toBe("text-generation");
    expect(d!.reason).toBe("Gemma3-1B-IT_multi-prefill-seq_q4_ekv1280.task: MediaPipe task bundle with an LLM prefill/decode model (TF_LITE_PREFILL_DECODE)");
    expect(d!.quantization).toBe("int4");
    expect(d!.contextLength).toBe(1280);
    expect(liteRtDetails(d!)?.bundle).toEqual({
      entries: [
        { name: "TF_LITE_PREFILL_DECODE", size: llmTflite.length, compressed: false, tflite: true },
        { name: "TOKENIZER_MODEL", size: 13, compressed: false, tflite: false },
        { name: "METADATA", size: 12, compressed: false, tflite: false },
      ],
      models: ["TF_LITE_PREFILL_DECODE"],
      tokenizer: "TOKENIZER_MODEL",
      llm: true,
    });
    // The METADATA entry is read too (LlmMetadata: chat template, context); 12 zero bytes are not one: a warning.
    expect(d!.warnings.some((w) => w.includes("METADATA entry is not an LlmMetadata proto"))).toBe(true);
    expect(fs.stats.reads).toBeLessThan(14);
  });

  it("a folder holding only a .task bundle is that LiteRT model, not a zip-format pickle checkpoint", async () => {
    const dir = await mkdtemp(join(tmpdir(), "litert-folder-"));
    try {
      const task = writeZip([
        { name: "TF_LITE_PREFILL_DECODE", data: llmTflite },
        { name: "TOKENIZER_MODEL", data: new TextEncoder().encode("sentencepiece") },
      ]);
      await writeFile(join(dir, "model.task"), task);
      const [d] = await detectSource(dir);
      expect(d).toMatchObject({ format: "litert", task: "text-generation", engine: { name: "litert" } });
      expect(d!.warnings.join("\n")).not.toMatch(/pickle/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a vision .task bundle has no task hint; a ZIP without models is not LiteRT", async () => {
    const vision = writeZip([
      { name: "hand_detector.tflite", data: writeTflite({}) },
      { name: "hand_landmarks_detector.tflite", data: writeTflite({}) },
    ]);
    const { d } = await detect({ "hand_landmarker.task": vision });
    expect(d!.task).toBe("unknown");
    expect(liteRtDetails(d!)?.bundle?.models).toEqual(["hand_detector.tflite", "hand_landmarks_detector.tflite"]);
    // A PyTorch checkpoint is a ZIP too: given alone (magic sniffed by the caller), it is not claimed.
    expect((await detect({ "pytorch_model.bin": writeZip([{ name: "archive/data.pkl", data: new Uint8Array(10) }]) })).d).toBeNull();
  });

  it("a corrupt .task is ignored with a warning when another model is present, and not servable alone", async () => {
    const task = writeZip([{ name: "model.tflite", data: writeTflite({}) }]);
    const { d } = await detect({ "broken.task": task.subarray(0, task.length - 10), "model.tflite": writeTflite({}) });
    expect(liteRtDetails(d!)?.primaryFile).toBe("model.tflite");
    expect(d!.warnings[0]).toMatch(/^broken\.task: no ZIP end-of-central-directory record/);
    const alone = (await detect({ "broken.task": task.subarray(0, task.length - 10) })).d!;
    expect(alone.format).toBe("litert");
    expect(alone.reason).toMatch(/^broken\.task: no ZIP end-of-central-directory record/);
    expect(chooseEngine(alone).engine).toBeNull();
  });

  it("a .litertlm container: text generation, sections listed", async () => {
    const file = writeLitertlm({
      sections: [{ dataType: 4 }, { dataType: 3, modelType: "tf_lite_prefill_decode" }, { dataType: 3, modelType: "tf_lite_embedder" }],
      sectionBytes: 4096,
    });
    const { d } = await detect({ "gemma-3n-E2B-it-int4.litertlm": file, "README.md": "x" });
    expect(d!.task).toBe("text-generation");
    expect(d!.reason).toBe("gemma-3n-E2B-it-int4.litertlm: LiteRT-LM container v1.5.0 (SP_Tokenizer, TFLiteModel:tf_lite_prefill_decode, TFLiteModel:tf_lite_embedder)");
    expect(d!.quantization).toBe("int4");
    expect(liteRtDetails(d!)?.litertlm).toMatchObject({ version: "1.5.0", modelTypes: ["tf_lite_prefill_decode", "tf_lite_embedder"] });
    expect(d!.warnings).toEqual([]);
  });

  it("a .litertlm without the magic is not one; with a broken header it is not servable", async () => {
    expect((await detect({ "model.litertlm": new Uint8Array(100) })).d).toBeNull();
    const bad = writeLitertlm({ sections: [{ dataType: 3 }] });
    new DataView(bad.buffer).setBigUint64(24, 8n, true);
    const { d } = await detect({ "model.litertlm": bad });
    expect(d!.reason).toMatch(/LITERTLM magic found but the header is not valid/);
    expect(chooseEngine(d!).engine).toBeNull();
  });

  it("prefers the LiteRT-LM container over loose .tflite files", async () => {
    const { d } = await detect({ "a.tflite": writeTflite({}), "model.litertlm": writeLitertlm({ sections: [{ dataType: 3 }] }) });
    expect(liteRtDetails(d!)?.primaryFile).toBe("model.litertlm");
    expect(liteRtDetails(d!)?.models?.length).toBe(2);
  });
});
