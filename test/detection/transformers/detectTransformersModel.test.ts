import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDetectionSchema, type FormatDetection } from "../../../src/core/detectionSchema.js";
import { LocalModelFileSystem } from "../../../src/detection/ModelFileSystem.js";
import { detectTransformersModel } from "../../../src/detection/transformers/detectTransformersModel.js";
import { buildSafetensors, type TensorSpec } from "../safetensors/writeSafetensors.js";
import { makeFolder, recordingFs, type FolderSpec } from "./hfFolder.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "transformers-detect-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const LLAMA_TENSORS: TensorSpec[] = [
  { name: "model.embed_tokens.weight", dtype: "BF16", shape: [64, 16] },
  { name: "model.layers.0.mlp.up_proj.weight", dtype: "BF16", shape: [32, 16] },
  { name: "model.layers.0.input_layernorm.weight", dtype: "F32", shape: [16] },
  { name: "model.norm.weight", dtype: "F32", shape: [16] },
];
const LLAMA_PARAMS = 64 * 16 + 32 * 16 + 16 + 16;
const TOKENIZER = { "tokenizer.json": { model: { type: "BPE" } } };

/** Every result fits the shared schema, and parsing its JSON (as the detection cache does) gives the same JSON back. */
function expectCacheRoundTrip(d: FormatDetection): void {
  const json = JSON.stringify(d);
  expect(JSON.stringify(formatDetectionSchema.parse(JSON.parse(json)))).toBe(json);
}

async function detect(files: FolderSpec): Promise<FormatDetection | null> {
  const fs = await LocalModelFileSystem.create(await makeFolder(files, root));
  const d = await detectTransformersModel(fs, await fs.list());
  if (d) expectCacheRoundTrip(d);
  return d;
}

async function detectSome(files: FolderSpec): Promise<FormatDetection> {
  const d = await detect(files);
  expect(d).not.toBeNull();
  return d!;
}

/** A minimal model of the given head: config.json, tokenizer, one tiny safetensors file. */
function model(config: object, extra: FolderSpec = {}): FolderSpec {
  return {
    "config.json": config,
    "model.safetensors": buildSafetensors([{ name: "w", dtype: "F32", shape: [4, 4] }]),
    ...TOKENIZER,
    ...extra,
  };
}

describe("detectTransformersModel: decoder models", () => {
  it("recognises a chat model from architectures[0] and tokenizer_config.json chat_template", async () => {
    const d = await detectSome({
      "config.json": {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        max_position_embeddings: 4096,
        torch_dtype: "bfloat16",
      },
      "generation_config.json": { do_sample: true },
      "model.safetensors": buildSafetensors(LLAMA_TENSORS, { format: "pt" }),
      "tokenizer.json": { model: {} },
      "tokenizer_config.json": { chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" },
      "special_tokens_map.json": {},
      "README.md": "# tiny",
      "training_args.bin": Uint8Array.from([0x80, 0x04]),
      "onnx/model.onnx": "not ours",
    });
    expect(d).toMatchObject({
      format: "safetensors",
      task: "chat",
      architecture: "LlamaForCausalLM",
      parameterCount: LLAMA_PARAMS,
      quantization: "BF16",
      contextLength: 4096,
      hasChatTemplate: true,
      warnings: [],
    });
    expect(d.reason).toBe("config.json architectures[0] = LlamaForCausalLM, chat template in tokenizer_config.json chat_template; weights: model.safetensors");
    expect(d.details).toMatchObject({
      modelType: "llama",
      architectures: ["LlamaForCausalLM"],
      torchDtype: "bfloat16",
      shards: 1,
      tensorCount: 4,
      dtypes: { BF16: { tensors: 2, parameters: 1536, bytes: 3072 }, F32: { tensors: 2, parameters: 32, bytes: 128 } },
    });
    expect(d.files.map((f) => [f.path, f.role])).toEqual([
      ["README.md", "other"],
      ["config.json", "config"],
      ["generation_config.json", "config"],
      ["model.safetensors", "weights"],
      ["special_tokens_map.json", "tokenizer"],
      ["tokenizer.json", "tokenizer"],
      ["tokenizer_config.json", "tokenizer"],
    ]);
    expect(d.files.find((f) => f.path === "model.safetensors")!.size).toBeGreaterThan(3200);
  });

  it("says text-generation without a template, and chat with chat_template.jinja", async () => {
    const gpt2 = { architectures: ["GPT2LMHeadModel"], model_type: "gpt2", n_positions: 1024 };
    const plain = await detectSome(model(gpt2));
    expect(plain).toMatchObject({ task: "text-generation", hasChatTemplate: false, contextLength: 1024, quantization: "F32" });
    expect(plain.reason).toMatch(/^config\.json architectures\[0\] = GPT2LMHeadModel, no chat template/);
    const jinja = await detectSome(model(gpt2, { "chat_template.jinja": "{{ messages }}" }));
    expect(jinja).toMatchObject({ task: "chat", hasChatTemplate: true });
    expect(jinja.reason).toContain("chat template in chat_template.jinja");
    expect(jinja.files.find((f) => f.path === "chat_template.jinja")?.role).toBe("tokenizer");
  });

  it("takes the task from model_type when architectures is missing, and the context from text_config", async () => {
    const d = await detectSome(model({ model_type: "qwen2", text_config: { max_position_embeddings: 32768 } }));
    expect(d).toMatchObject({ task: "text-generation", architecture: "qwen2", contextLength: 32768 });
    expect(d.reason).toMatch(/^config\.json model_type = qwen2/);
  });

  it("reads quantization from quantization_config", async () => {
    const gptq = await detectSome(model({ architectures: ["MistralForCausalLM"], model_type: "mistral", quantization_config: { quant_method: "gptq", bits: 4 } }));
    expect(gptq).toMatchObject({ quantization: "gptq-4bit", details: { quantMethod: "gptq", quantBits: 4 } });
    const bnb = await detectSome(model({ architectures: ["LlamaForCausalLM"], quantization_config: { quant_method: "bitsandbytes", load_in_4bit: true } }));
    expect(bnb.quantization).toBe("bitsandbytes-4bit");
    const awq = await detectSome(model({ architectures: ["LlamaForCausalLM"], quantization_config: { quant_method: "AWQ" } }));
    expect(awq.quantization).toBe("awq");
  });

  it("warns that auto_map needs custom code", async () => {
    const d = await detectSome(
      model({
        architectures: ["MyForCausalLM"],
        model_type: "my",
        auto_map: { AutoConfig: "configuration_my.MyConfig", AutoModelForCausalLM: "modeling_my.MyForCausalLM" },
      }),
    );
    expect(d.task).toBe("text-generation");
    expect(d.details).toMatchObject({ needsCustomCode: true, autoMap: ["AutoConfig", "AutoModelForCausalLM"] });
    expect(d.warnings).toContain("needs custom code (trust_remote_code): auto_map names AutoConfig, AutoModelForCausalLM");
  });

  it("parses a config.json with Python's NaN and survives a broken one", async () => {
    const nan = await detectSome(model({}, { "config.json": '{"architectures": ["LlamaForCausalLM"], "rope_scaling": NaN, "max_position_embeddings": 2048}' }));
    expect(nan).toMatchObject({ task: "text-generation", contextLength: 2048, warnings: [] });
    const broken = await detectSome(model({}, { "config.json": "{ not json" }));
    expect(broken).toMatchObject({ format: "safetensors", task: "unknown", architecture: null });
    expect(broken.warnings).toContain("config.json is not valid JSON; ignored");
    const array = await detectSome(model({}, { "config.json": "[1, 2]" }));
    expect(array.warnings).toContain("config.json is not a JSON object; ignored");
  });
});

describe("detectTransformersModel: other tasks", () => {
  it.each<[{ architectures?: string[]; [key: string]: unknown }, string]>([
    [{ architectures: ["T5ForConditionalGeneration"], model_type: "t5", n_positions: 512 }, "text2text"],
    [{ architectures: ["MarianMTModel"], model_type: "marian" }, "text2text"],
    [{ architectures: ["BartForConditionalGeneration"] }, "text2text"],
    [{ architectures: ["WhisperForConditionalGeneration"], model_type: "whisper", max_target_positions: 448 }, "speech-recognition"],
    [{ architectures: ["Wav2Vec2ForCTC"], model_type: "wav2vec2" }, "speech-recognition"],
    [{ architectures: ["SpeechEncoderDecoderModel"] }, "speech-recognition"],
    [{ architectures: ["DistilBertForSequenceClassification"], model_type: "distilbert" }, "text-classification"],
    [{ architectures: ["BertForTokenClassification"], model_type: "bert" }, "token-classification"],
    [{ architectures: ["ViTForImageClassification"], model_type: "vit" }, "image-classification"],
    [{ architectures: ["XLMRobertaModel"], model_type: "xlm-roberta" }, "embeddings"],
    [{ architectures: ["NomicBertModel"], model_type: "nomic_bert" }, "embeddings"],
    [{ model_type: "mpnet" }, "embeddings"],
    [{ architectures: ["BertForMaskedLM"], model_type: "bert" }, "unknown"],
    [{ architectures: ["LlavaForConditionalGeneration"], model_type: "llava" }, "unknown"],
    [{ architectures: ["FooBarForMagic"], model_type: "foobar" }, "unknown"],
    [{ something: 1 }, "unknown"],
  ])("%j → %s", async (config, task) => {
    const d = await detectSome(model(config));
    expect(d.task).toBe(task);
    expect(d.format).toBe("safetensors");
    if (config.architectures) expect(d.reason).toContain(`config.json architectures[0] = ${config.architectures[0]}`);
  });

  it("gives whisper its decoder length and a multimodal model with a template chat", async () => {
    const whisper = await detectSome(
      model(
        { architectures: ["WhisperForConditionalGeneration"], model_type: "whisper", max_target_positions: 448 },
        {
          "tokenizer.json": undefined,
          "vocab.json": {},
          "merges.txt": "#version: 0.2\n",
          "preprocessor_config.json": { feature_size: 80 },
        },
      ),
    );
    expect(whisper).toMatchObject({ task: "speech-recognition", contextLength: 448, warnings: [] });
    const llava = await detectSome(model({ architectures: ["LlavaForConditionalGeneration"], model_type: "llava" }, { "chat_template.json": { chat_template: "x" } }));
    expect(llava.task).toBe("chat");
  });

  it("recognises a sentence-transformers folder and its modules", async () => {
    const d = await detectSome({
      "config.json": { architectures: ["BertModel"], model_type: "bert", max_position_embeddings: 512 },
      "model.safetensors": buildSafetensors([{ name: "embeddings.word_embeddings.weight", dtype: "F32", shape: [30, 8] }]),
      "vocab.txt": "[PAD]\n[UNK]\n",
      "tokenizer_config.json": { do_lower_case: true },
      "modules.json": [
        { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
        { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
        { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
      ],
      "config_sentence_transformers.json": { __version__: { sentence_transformers: "2.2.2" } },
      "sentence_bert_config.json": { max_seq_length: 256, do_lower_case: false },
      "1_Pooling/config.json": { word_embedding_dimension: 8, pooling_mode_mean_tokens: true, pooling_mode_cls_token: false },
      "2_Normalize/.keep": "",
      "2_Normalize/README": "normalize",
    });
    expect(d).toMatchObject({
      task: "embeddings",
      architecture: "BertModel",
      parameterCount: 240,
      contextLength: 512,
      warnings: [],
      details: {
        sentenceTransformers: true,
        sentenceTransformersModules: ["Transformer", "Pooling", "Normalize"],
        pooling: "mean",
        normalize: true,
        maxSeqLength: 256,
      },
    });
    expect(d.reason).toBe("sentence-transformers model (modules.json); weights: model.safetensors");
    expect(d.files.map((f) => [f.path, f.role])).toEqual([
      ["1_Pooling/config.json", "config"],
      ["2_Normalize/README", "other"],
      ["config.json", "config"],
      ["config_sentence_transformers.json", "config"],
      ["model.safetensors", "weights"],
      ["modules.json", "config"],
      ["sentence_bert_config.json", "config"],
      ["tokenizer_config.json", "tokenizer"],
      ["vocab.txt", "tokenizer"],
    ]);
  });

  it("keeps a cross-encoder's classification head even with sentence-transformers files", async () => {
    const d = await detectSome(model({ architectures: ["XLMRobertaForSequenceClassification"] }, { "config_sentence_transformers.json": {} }));
    expect(d.task).toBe("text-classification");
  });

  it("a sequence classifier with one label is a reranker (cross-encoder); with more it is text-classification", async () => {
    for (const config of [
      { architectures: ["BertForSequenceClassification"], model_type: "bert", num_labels: 1 },
      { architectures: ["XLMRobertaForSequenceClassification"], model_type: "xlm-roberta", id2label: { "0": "LABEL_0" } },
    ]) {
      const d = await detectSome(model(config, { "config_sentence_transformers.json": {} }));
      expect(d.task).toBe("rerank");
      expect(d.reason).toContain(`config.json architectures[0] = ${config.architectures[0]} with one label: a cross-encoder (reranker)`);
    }
    const two = await detectSome(model({ architectures: ["BertForSequenceClassification"], id2label: { "0": "NEG", "1": "POS" } }));
    expect(two.task).toBe("text-classification");
    const many = await detectSome(model({ architectures: ["BertForSequenceClassification"], num_labels: 3, id2label: { "0": "a" } }));
    expect(many.task).toBe("text-classification");
  });

  it("warns about a missing tokenizer except for image models", async () => {
    const noTok = await detectSome(model({ architectures: ["BertModel"] }, { "tokenizer.json": undefined }));
    expect(noTok.warnings.some((w) => w.startsWith("no tokenizer files"))).toBe(true);
    const vit = await detectSome(model({ architectures: ["ViTForImageClassification"] }, { "tokenizer.json": undefined }));
    expect(vit.warnings).toEqual([]);
    const sp = await detectSome(model({ architectures: ["T5ForConditionalGeneration"] }, { "tokenizer.json": undefined, "spiece.model": "x" }));
    expect(sp.warnings).toEqual([]);
    const ctc = await detectSome(model({ architectures: ["Wav2Vec2ForCTC"] }, { "tokenizer.json": undefined, "vocab.json": {} }));
    expect(ctc.warnings).toEqual([]);
  });
});

describe("detectTransformersModel: what is not (only) a transformers model", () => {
  it("returns null without config.json and transformers weights", async () => {
    expect(await detect({ "README.md": "hello", "notes.txt": "x" })).toBeNull();
  });

  it("returns an unknown-format detection for config.json without weights, null when another format owns the folder", async () => {
    const d = await detectSome({ "config.json": { architectures: ["LlamaForCausalLM"] }, ...TOKENIZER });
    expect(d).toMatchObject({ format: "unknown", task: "text-generation", parameterCount: null });
    expect(d.warnings).toContain("no weights found (model.safetensors, shards with an index, or pytorch_model.bin)");
    const tf = await detectSome({ "config.json": { architectures: ["BertModel"] }, "tf_model.h5": "x", ...TOKENIZER });
    expect(tf.warnings[0]).toMatch(/^only tf_model\.h5/);
    expect(await detect({ "config.json": { architectures: ["BertModel"] }, "onnx/model.onnx": "x", ...TOKENIZER })).toBeNull();
    expect(await detect({ "config.json": { model_type: "llama" }, "model-q4.gguf": "GGUF" })).toBeNull();
  });

  it("reads only small files and headers, never tensor data", async () => {
    // 2 MiB of tensor data behind a tiny header.
    const dir = await makeFolder(
      model({ architectures: ["LlamaForCausalLM"] }, { "model.safetensors": buildSafetensors([{ name: "w", dtype: "F32", shape: [512, 1024] }]) }),
      root,
    );
    const fs = recordingFs(await LocalModelFileSystem.create(dir));
    const d = await detectTransformersModel(fs, await fs.list());
    expect(d?.parameterCount).toBe(512 * 1024);
    expect(fs.opened).toEqual(["model.safetensors"]);
    expect(fs.texts.sort()).toEqual(["config.json"]);
    expect(fs.bytesRead).toBeLessThan(1024);
  });

  it("works on a single safetensors file, whatever its name", async () => {
    const dir = await makeFolder({ "model.safetensors": buildSafetensors(LLAMA_TENSORS), "weights.dat": buildSafetensors(LLAMA_TENSORS) }, root);
    for (const name of ["model.safetensors", "weights.dat"]) {
      const fs = await LocalModelFileSystem.create(join(dir, name));
      const d = await detectTransformersModel(fs, await fs.list());
      expectCacheRoundTrip(d!);
      expect(d).toMatchObject({ format: "safetensors", task: "unknown", parameterCount: LLAMA_PARAMS, quantization: "BF16" });
      expect(d!.files).toEqual([{ path: name, size: expect.any(Number), role: "weights" }]);
      expect(d!.warnings).toContain("no config.json: the architecture and task are unknown");
    }
  });

  it("flags a PEFT adapter", async () => {
    const d = await detectSome({
      "adapter_config.json": { peft_type: "LORA", base_model_name_or_path: "meta-llama/Llama-3.2-1B" },
      "adapter_model.safetensors": buildSafetensors([{ name: "lora_A", dtype: "F32", shape: [4, 2] }]),
      ...TOKENIZER,
    });
    expect(d).toMatchObject({ format: "safetensors", parameterCount: 8, details: { adapter: true } });
    expect(d.warnings).toContain("a PEFT adapter (adapter_config.json): it needs its base model to run");
    expect(d.files.find((f) => f.path === "adapter_config.json")?.role).toBe("config");
  });

  it("stops when aborted", async () => {
    const fs = await LocalModelFileSystem.create(await makeFolder(model({ architectures: ["BertModel"] }), root));
    const ac = new AbortController();
    ac.abort();
    await expect(detectTransformersModel(fs, await fs.list(), ac.signal)).rejects.toThrow(/abort/i);
  });
});
