import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDetectionSchema, onnxDetails, type FormatDetection } from "../../../src/core/detectionSchema.js";
import { LocalModelFileSystem, type ModelFileSystem } from "../../../src/detection/ModelFileSystem.js";
import { detectOnnxModel } from "../../../src/detection/onnx/detectOnnxModel.js";
import { MemoryModelFileSystem, type MemoryFile } from "./memoryFs.js";
import { classifierSpec, decoderSpec, encoderSpec, writeOnnx } from "./writeOnnx.js";

/** Every result fits the shared schema, and parsing its JSON (as the detection cache does) gives the same JSON back. */
function expectCacheRoundTrip(d: FormatDetection): void {
  const json = JSON.stringify(d);
  expect(JSON.stringify(formatDetectionSchema.parse(JSON.parse(json)))).toBe(json);
}

async function detect(files: Record<string, MemoryFile>): Promise<{ d: FormatDetection | null; fs: MemoryModelFileSystem }> {
  const fs = new MemoryModelFileSystem(files);
  const d = await detectOnnxModel(fs, await fs.list());
  if (d) expectCacheRoundTrip(d);
  return { d, fs };
}

function roles(d: FormatDetection): Record<string, string> {
  return Object.fromEntries(d.files.map((f) => [f.path, f.role]));
}

const json = (v: unknown): string => JSON.stringify(v);
const chatTemplate = json({ chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" });

describe("detectOnnxModel", () => {
  it("returns null without an .onnx file, and for a lone file that does not parse", async () => {
    expect((await detect({ "config.json": "{}", "model.safetensors": new Uint8Array(16) })).d).toBeNull();
    expect((await detect({ "notes.bin": "not a model at all" })).d).toBeNull();
  });

  it("a lone ONNX file under another name is recognised by parsing it", async () => {
    const { d } = await detect({ "graph.bin": writeOnnx(encoderSpec()) });
    expect(d?.format).toBe("onnx");
    expect(d?.task).toBe("embeddings");
  });

  it("a single decoder file: text generation from past_key_values inputs", async () => {
    const { d } = await detect({ "model.onnx": writeOnnx(decoderSpec(2)) });
    expect(d).not.toBeNull();
    expect(d!.format).toBe("onnx");
    expect(d!.task).toBe("text-generation");
    expect(d!.reason).toContain("past_key_values.0.key");
    expect(d!.quantization).toBe("fp32");
    expect(d!.parameterCount).toBe(512);
    expect(onnxDetails(d!)?.layout).toBe("single-file");
    expect(onnxDetails(d!)?.primaryFile).toBe("model.onnx");
    expect(onnxDetails(d!)?.opset).toBe(17);
    expect(onnxDetails(d!)?.producer).toBe("pytorch");
    expect(onnxDetails(d!)?.genai).toBe(false);
    expect((onnxDetails(d!)?.inputs ?? []).map((i) => i.name)).toContain("past_key_values.1.value");
  });

  it("classifies bare graphs: encoder → embeddings, rank-2 logits → classification, otherwise unknown", async () => {
    expect((await detect({ "m.onnx": writeOnnx(encoderSpec()) })).d?.reason).toContain("last_hidden_state");
    const cls = (await detect({ "m.onnx": writeOnnx(classifierSpec()) })).d!;
    expect([cls.task, cls.reason]).toEqual(["text-classification", "ONNX single-file (m.onnx); graph: logits output of rank 2"]);
    const odd = (await detect({ "m.onnx": writeOnnx({ inputs: [{ name: "x" }], outputs: [{ name: "y" }] }) })).d!;
    expect(odd.task).toBe("unknown");
    expect(odd.reason).toContain("inputs [x] and outputs [y]");
  });

  it("optimum export: config + chat template + external data", async () => {
    const model = writeOnnx(
      decoderSpec(2, {
        initializers: [
          { name: "a", dims: [1024], external: { location: "model.onnx_data", offset: 0, length: 4096 } },
          { name: "b", dims: [1024], external: { location: "model.onnx_data", offset: 4096, length: 4096 } },
        ],
      }),
    );
    const { d } = await detect({
      "config.json": json({ architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 2048 }),
      "tokenizer_config.json": chatTemplate,
      "tokenizer.json": "{}",
      "generation_config.json": "{}",
      "model.onnx": model,
      "model.onnx_data": new Uint8Array(8192),
      "README.md": "# hi",
    });
    expect(d!.task).toBe("chat");
    expect(d!.reason).toBe("ONNX optimum (model.onnx); config.json: LlamaForCausalLM, with a chat template");
    expect(d!.architecture).toBe("LlamaForCausalLM");
    expect(d!.contextLength).toBe(2048);
    expect(d!.hasChatTemplate).toBe(true);
    expect(d!.parameterCount).toBe(2048);
    expect(d!.warnings).toEqual([]);
    expect(roles(d!)).toEqual({
      "README.md": "other",
      "config.json": "config",
      "generation_config.json": "config",
      "model.onnx": "weights",
      "model.onnx_data": "external-data",
      "tokenizer.json": "tokenizer",
      "tokenizer_config.json": "tokenizer",
    });
    expect(onnxDetails(d!)?.externalData).toEqual([{ location: "model.onnx_data", tensors: 2, bytes: 8192, path: "model.onnx_data", exists: true, safe: true }]);
    expect(onnxDetails(d!)?.unsafeExternalData).toBe(false);
  });

  it("flags external data that leaves the folder, is absolute, or is missing", async () => {
    const model = writeOnnx(
      encoderSpec({
        initializers: [
          { name: "a", dims: [4], external: { location: "../../etc/passwd" } },
          { name: "b", dims: [4], external: { location: "/etc/shadow" } },
          { name: "c", dims: [4], external: { location: "C:\\weights.bin" } },
          { name: "d", dims: [4], external: { location: "sub\\..\\..\\x.bin" } },
          { name: "e", dims: [4], external: { location: "weights.bin", length: 16 } },
          { name: "f", dims: [4], external: { location: "small.bin", length: 100 } },
        ],
      }),
    );
    const { d } = await detect({ "onnx/model.onnx": model, "onnx/small.bin": new Uint8Array(10) });
    expect(onnxDetails(d!)?.unsafeExternalData).toBe(true);
    const w = d!.warnings.join("\n");
    expect(w).toContain("'../../etc/passwd' outside the model folder ('..' leaves the model folder)");
    expect(w).toContain("'/etc/shadow' outside the model folder (absolute path)");
    expect(w).toContain("'C:\\weights.bin' outside the model folder (absolute path)");
    expect(w).toContain("'sub\\..\\..\\x.bin' outside");
    expect(w).toContain("onnx/weights.bin, which is missing");
    expect(w).toContain("onnx/small.bin is 10 bytes, the graph expects at least 100");
    expect(roles(d!)["onnx/small.bin"]).toBe("external-data");
  });

  it("transformers.js layout: config at the root, variants in onnx/, full precision first", async () => {
    const enc = writeOnnx(encoderSpec());
    const { d, fs } = await detect({
      "config.json": json({ architectures: ["BertModel"], model_type: "bert", max_position_embeddings: 512 }),
      "tokenizer.json": "{}",
      "onnx/model.onnx": enc,
      "onnx/model_quantized.onnx": enc,
      "onnx/model_fp16.onnx": enc,
      "onnx/model_q4f16.onnx": enc,
      "onnx/model_bnb4.onnx": enc,
    });
    expect(d!.task).toBe("embeddings");
    expect(d!.reason).toBe("ONNX transformers.js (onnx/model.onnx); config.json: BertModel (bare encoder)");
    expect(d!.contextLength).toBe(512);
    expect(onnxDetails(d!)?.layout).toBe("transformers.js");
    expect(onnxDetails(d!)?.variants).toEqual([
      { path: "onnx/model_bnb4.onnx", component: "model", quantization: "bnb4", size: enc.length },
      { path: "onnx/model_fp16.onnx", component: "model", quantization: "fp16", size: enc.length },
      { path: "onnx/model_q4f16.onnx", component: "model", quantization: "q4f16", size: enc.length },
      { path: "onnx/model_quantized.onnx", component: "model", quantization: "int8", size: enc.length },
    ]);
    // Only the primary graph is read.
    expect([...fs.stats.perFile.keys()].filter((p) => p.endsWith(".onnx"))).toEqual(["onnx/model.onnx"]);
  });

  it("quantized-only transformers.js folders take the quantization from the name", async () => {
    const enc = writeOnnx(encoderSpec());
    const { d } = await detect({
      "config.json": json({ architectures: ["XLMRobertaModel"], model_type: "xlm-roberta" }),
      "onnx/model_q4.onnx": enc,
      "onnx/model_quantized.onnx": enc,
    });
    expect(onnxDetails(d!)?.primaryFile).toBe("onnx/model_quantized.onnx");
    expect(d!.quantization).toBe("int8");
  });

  it("sentence-transformers files decide embeddings", async () => {
    const { d } = await detect({
      "config.json": json({ architectures: ["MPNetForMaskedLM"], model_type: "mpnet" }),
      "modules.json": "[]",
      "1_Pooling/config.json": "{}",
      "onnx/model.onnx": writeOnnx(classifierSpec()),
    });
    expect(d!.task).toBe("embeddings");
    expect(d!.reason).toContain("sentence-transformers (modules.json)");
    expect(roles(d!)["1_Pooling/config.json"]).toBe("config");
  });

  it("seq2seq, whisper and classifiers from config.json", async () => {
    const dec = writeOnnx(decoderSpec(1));
    const t5 = await detect({
      "config.json": json({ architectures: ["T5ForConditionalGeneration"], model_type: "t5", is_encoder_decoder: true }),
      "encoder_model.onnx": writeOnnx(encoderSpec()),
      "decoder_model.onnx": dec,
      "decoder_model_merged.onnx": dec,
    });
    expect(t5.d!.task).toBe("text2text");
    expect(onnxDetails(t5.d!)?.primaryFile).toBe("decoder_model_merged.onnx");
    expect(onnxDetails(t5.d!)?.components).toEqual(["decoder_model", "decoder_model_merged", "encoder_model"]);

    const whisper = await detect({
      "config.json": json({ architectures: ["WhisperForConditionalGeneration"], model_type: "whisper", max_target_positions: 448 }),
      "onnx/encoder_model.onnx": writeOnnx({ inputs: [{ name: "input_features", shape: [1, 80, 3000] }], outputs: [{ name: "last_hidden_state" }] }),
      "onnx/decoder_model_merged.onnx": dec,
    });
    expect(whisper.d!.task).toBe("speech-recognition");

    const cls = await detect({
      "config.json": json({ architectures: ["DistilBertForSequenceClassification"], model_type: "distilbert" }),
      "model.onnx": writeOnnx(classifierSpec()),
    });
    expect(cls.d!.task).toBe("text-classification");
    expect(cls.d!.reason).toContain("config.json: DistilBertForSequenceClassification");
  });

  it("an encoder-decoder folder without config reads as text2text from its files", async () => {
    const dec = writeOnnx(decoderSpec(1));
    const { d } = await detect({ "encoder_model.onnx": writeOnnx(encoderSpec()), "decoder_model_merged.onnx": dec });
    expect(d!.task).toBe("text2text");
    expect(d!.reason).toContain("next to an encoder_model");
  });

  it("onnxruntime-genai: decoder named in genai_config.json, precision from the folder", async () => {
    const model = writeOnnx(
      decoderSpec(2, {
        nodes: [
          { op: "MatMulNBits", domain: "com.microsoft" },
          { op: "GroupQueryAttention", domain: "com.microsoft" },
        ],
        initializers: [{ name: "w", dims: [64, 2, 16], dataType: 2, external: { location: "model.onnx.data", length: 2048 } }],
      }),
    );
    const genai = {
      model: { type: "phi3", context_length: 4096, decoder: { filename: "model.onnx" } },
      search: { max_length: 4096 },
    };
    const { d } = await detect({
      "README.md": "x",
      "cpu-int4-rtn-block-32/genai_config.json": json(genai),
      "cpu-int4-rtn-block-32/model.onnx": model,
      "cpu-int4-rtn-block-32/model.onnx.data": new Uint8Array(2048),
      "cpu-int4-rtn-block-32/tokenizer_config.json": chatTemplate,
      "cpu-int4-rtn-block-32/tokenizer.json": "{}",
      "cuda-fp16/genai_config.json": json(genai),
      "cuda-fp16/model.onnx": model,
    });
    expect(d!.task).toBe("chat");
    expect(d!.reason).toBe("ONNX onnxruntime-genai (cpu-int4-rtn-block-32/model.onnx); genai_config.json: model.type = phi3, with a chat template");
    expect(d!.contextLength).toBe(4096);
    expect(d!.quantization).toBe("int4");
    expect(d!.parameterCount).toBeNull(); // packed int4 weights do not count parameters
    expect(d!.architecture).toBe("phi3");
    expect(onnxDetails(d!)?.genai).toBe(true);
    expect(onnxDetails(d!)?.genaiConfig).toMatchObject({ modelType: "phi3", decoder: "model.onnx", otherConfigs: ["cuda-fp16/genai_config.json"] });
    expect(roles(d!)["cpu-int4-rtn-block-32/model.onnx.data"]).toBe("external-data");
    expect(d!.warnings).toEqual([]);
  });

  it("genai_config.json naming a decoder outside its folder is refused", async () => {
    const { d } = await detect({
      "genai_config.json": json({ model: { type: "llama", decoder: { filename: "../model.onnx" } } }),
      "model.onnx": writeOnnx(decoderSpec(1)),
    });
    expect(d!.warnings[0]).toContain("unsafe ('..' leaves the model folder)");
    expect(onnxDetails(d!)?.primaryFile).toBe("model.onnx");
  });

  it("quantization from operators when the name says nothing", async () => {
    const q8 = await detect({ "model.onnx": writeOnnx(encoderSpec({ nodes: [{ op: "DynamicQuantizeLinear" }, { op: "MatMulInteger" }] })) });
    expect(q8.d!.quantization).toBe("int8");
    const fp16 = await detect({ "model.onnx": writeOnnx(encoderSpec({ initializers: [{ name: "w", dims: [8], dataType: 10, rawBytes: 16 }] })) });
    expect(fp16.d!.quantization).toBe("fp16");
  });

  it("an unreadable .onnx is still ONNX, with the error as a warning; broken configs warn", async () => {
    const { d } = await detect({ "model.onnx": "garbage garbage garbage", "config.json": "{not json" });
    expect(d!.format).toBe("onnx");
    expect(d!.task).toBe("unknown");
    expect(d!.warnings.some((w) => w.startsWith("config.json is not valid JSON"))).toBe(true);
    expect(d!.warnings.some((w) => w.startsWith("model.onnx: the graph could not be read"))).toBe(true);
    expect(onnxDetails(d!)?.graphError).toBeTypeOf("string");
  });

  describe("on a local folder", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "onnx-detect-"));
      const files: Record<string, Uint8Array | string> = {
        "config.json": json({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", max_position_embeddings: 32768 }),
        "tokenizer_config.json": chatTemplate,
        "onnx/model.onnx": writeOnnx(decoderSpec(24, { initializers: [{ name: "big", dims: [1310720], rawBytes: 5 << 20 }] })),
      };
      for (const [p, c] of Object.entries(files)) {
        await mkdir(dirname(join(dir, p)), { recursive: true });
        await writeFile(join(dir, p), c);
      }
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("reads a few KB of a 5 MB graph through LocalModelFileSystem", async () => {
      const local = await LocalModelFileSystem.create(dir);
      let bytesRead = 0;
      const counting: ModelFileSystem = {
        label: local.label,
        list: () => local.list(),
        readText: (p, m) => local.readText(p, m),
        async open(p) {
          const src = await local.open(p);
          return {
            size: src.size,
            close: () => src.close(),
            async read(o, l, s) {
              const b = await src.read(o, l, s);
              bytesRead += b.length;
              return b;
            },
          };
        },
      };
      const t0 = performance.now();
      const d = await detectOnnxModel(counting, await counting.list());
      const ms = performance.now() - t0;
      expect(d!.task).toBe("chat");
      expect(d!.contextLength).toBe(32768);
      expect(onnxDetails(d!)?.inputs?.length).toBe(2 + 48);
      expect(bytesRead).toBeLessThan(32 << 10);
      expect(onnxDetails(d!)?.bytesRead).toBe(bytesRead);
      expect(ms).toBeLessThan(1000);
    });
  });
});
