// The models folder `npm run bench -- detect` detects: 200 top-level entries mixing every format detection knows,
// shaped like real downloads where it matters for detection's cost (tensor counts, 32k-256k-entry tokenizer arrays
// in GGUF headers, safetensors headers with hundreds of tensors, ONNX graphs with thousands of nodes). Weights are
// not written: files are extended to a realistic size with ftruncate (sparse), and detection only reads headers.
import { mkdir, open, readdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { GgmlType, GgufValueType, GgufWriter } from "../test/fixtures/gguf/GgufWriter.js";
import { makeTinyChatModel, TINY_CHAT_TEMPLATE } from "../test/fixtures/makeTinyChatModel.js";
import { makeTinyEmbeddingModel } from "../test/fixtures/makeTinyEmbeddingModel.js";
import { writeTflite } from "../test/detection/litert/writeFlatBuffer.js";
import { classifierSpec, decoderSpec, encoderSpec, writeOnnx, type NodeSpec } from "../test/detection/onnx/writeOnnx.js";
import { encodeSafetensors, safetensorsHeaderObject, type TensorSpec } from "../test/detection/safetensors/writeSafetensors.js";

/** What the folder holds, to check detection's answer against. */
export interface DetectFolderSummary {
  dir: string;
  /** Top-level entries (files and folders) a models dir scan looks at. */
  entries: number;
  /** Models a correct scan lists. */
  expectedModels: number;
  /** Entries by kind, for the report. */
  kinds: Record<string, number>;
  /** Top-level entry name → its kind. */
  kindOf: Map<string, string>;
  /** Bytes on disk (sparse tails excluded) and apparent bytes. */
  writtenBytes: number;
  apparentBytes: number;
}

const Q4_K = 12;
const Q6_K = 14;
const I2_S = 36;

/** A header-only GGUF: real metadata and tensor infos, tensors of no bytes; the file is then extended to `apparent`. */
interface HeaderSpec {
  arch: string;
  name: string;
  fileType: number;
  layers: number;
  embd: number;
  ff: number;
  vocab: number;
  /** BPE merges (gpt2-style tokenizers carry ~150k-280k of them). */
  merges: number;
  tokenizerModel: "llama" | "gpt2";
  contextLength: number;
  /** ggml type of the 2-D layer weights. */
  weightType: number;
  qkvBias?: boolean;
  chatTemplate?: string;
}

/** Deterministic token text of realistic length (BPE tokens average 6-7 bytes). */
function tokenText(i: number): string {
  const stem = i.toString(36);
  return i % 3 === 0 ? `\u0120${stem}ing` : i % 3 === 1 ? `${stem}er` : `\u0120w${stem}`;
}

function headerOnlyGguf(s: HeaderSpec): Buffer {
  const w = new GgufWriter();
  w.addString("general.architecture", s.arch);
  w.addString("general.name", s.name);
  w.addUint32("general.file_type", s.fileType);
  w.addUint32("general.quantization_version", 2);
  w.addUint32(`${s.arch}.context_length`, s.contextLength);
  w.addUint32(`${s.arch}.embedding_length`, s.embd);
  w.addUint32(`${s.arch}.block_count`, s.layers);
  w.addUint32(`${s.arch}.feed_forward_length`, s.ff);
  w.addUint32(`${s.arch}.attention.head_count`, s.embd / 128);
  w.addUint32(`${s.arch}.attention.head_count_kv`, Math.max(1, s.embd / 512));
  w.addFloat32(`${s.arch}.rope.freq_base`, 1_000_000);
  w.addFloat32(`${s.arch}.attention.layer_norm_rms_epsilon`, 1e-6);
  w.addString("tokenizer.ggml.model", s.tokenizerModel);
  w.addString("tokenizer.ggml.pre", s.tokenizerModel === "gpt2" ? "qwen2" : "default");
  const tokens = Array.from({ length: s.vocab }, (_, i) => tokenText(i));
  w.addArray("tokenizer.ggml.tokens", GgufValueType.STRING, tokens);
  if (s.tokenizerModel === "llama")
    w.addArray(
      "tokenizer.ggml.scores",
      GgufValueType.FLOAT32,
      Array.from({ length: s.vocab }, (_, i) => -i),
    );
  w.addArray(
    "tokenizer.ggml.token_type",
    GgufValueType.INT32,
    Array.from({ length: s.vocab }, (_, i) => (i < 3 ? 3 : 1)),
  );
  if (s.merges > 0)
    w.addArray(
      "tokenizer.ggml.merges",
      GgufValueType.STRING,
      Array.from({ length: s.merges }, (_, i) => `${tokenText(i)} ${tokenText(i + 7)}`),
    );
  w.addUint32("tokenizer.ggml.bos_token_id", 1);
  w.addUint32("tokenizer.ggml.eos_token_id", 2);
  if (s.chatTemplate) w.addString("tokenizer.chat_template", s.chatTemplate);

  const none = new Uint8Array(0);
  w.addTensorRaw("token_embd.weight", [s.embd, s.vocab], s.weightType === I2_S ? GgmlType.F16 : Q4_K, none);
  for (let l = 0; l < s.layers; l++) {
    const b = `blk.${l}`;
    w.addTensorRaw(`${b}.attn_norm.weight`, [s.embd], GgmlType.F32, none);
    for (const t of ["attn_q", "attn_k", "attn_v", "attn_output"]) {
      w.addTensorRaw(`${b}.${t}.weight`, [s.embd, s.embd], s.weightType, none);
      if (s.qkvBias && t !== "attn_output") w.addTensorRaw(`${b}.${t}.bias`, [s.embd], GgmlType.F32, none);
    }
    w.addTensorRaw(`${b}.ffn_norm.weight`, [s.embd], GgmlType.F32, none);
    w.addTensorRaw(`${b}.ffn_gate.weight`, [s.embd, s.ff], s.weightType, none);
    w.addTensorRaw(`${b}.ffn_up.weight`, [s.embd, s.ff], s.weightType, none);
    w.addTensorRaw(`${b}.ffn_down.weight`, [s.ff, s.embd], s.weightType, none);
    if (s.weightType === I2_S) {
      w.addTensorRaw(`${b}.attn_sub_norm.weight`, [s.embd], GgmlType.F32, none);
      w.addTensorRaw(`${b}.ffn_sub_norm.weight`, [s.ff], GgmlType.F32, none);
    }
  }
  w.addTensorRaw("output_norm.weight", [s.embd], GgmlType.F32, none);
  if (s.weightType !== I2_S) w.addTensorRaw("output.weight", [s.embd, s.vocab], Q6_K, none);
  return w.toBuffer();
}

const LLAMA2_TEMPLATE =
  "{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}";

/** Llama-2-7B-like: 291 tensors, 32k SentencePiece vocabulary with scores. */
const LLAMA2: HeaderSpec = {
  arch: "llama",
  name: "Llama 2 7B Chat",
  fileType: 15,
  layers: 32,
  embd: 4096,
  ff: 11008,
  vocab: 32000,
  merges: 0,
  tokenizerModel: "llama",
  contextLength: 4096,
  weightType: Q4_K,
  chatTemplate: LLAMA2_TEMPLATE,
};
/** Qwen2.5-7B-like: 339 tensors, 152k tokens and 151k merges (a ~5 MB header). */
const QWEN25: HeaderSpec = {
  arch: "qwen2",
  name: "Qwen2.5 7B Instruct",
  fileType: 15,
  layers: 28,
  embd: 3584,
  ff: 18944,
  vocab: 152064,
  merges: 151387,
  tokenizerModel: "gpt2",
  contextLength: 32768,
  weightType: Q4_K,
  qkvBias: true,
  chatTemplate: TINY_CHAT_TEMPLATE,
};
/** Llama-3-8B-like: 128k tokens, 280k merges (a ~7 MB header). */
const LLAMA3: HeaderSpec = {
  arch: "llama",
  name: "Meta Llama 3.1 8B Instruct",
  fileType: 15,
  layers: 32,
  embd: 4096,
  ff: 14336,
  vocab: 128256,
  merges: 280147,
  tokenizerModel: "gpt2",
  contextLength: 131072,
  weightType: Q4_K,
  chatTemplate: TINY_CHAT_TEMPLATE,
};
/** BitNet b1.58 2B4T-like: I2_S (ggml type 36) layer weights, the llama-3 vocabulary. */
const BITNET: HeaderSpec = {
  arch: "bitnet-b1.58",
  name: "BitNet b1.58 2B4T",
  fileType: 40,
  layers: 30,
  embd: 2560,
  ff: 6912,
  vocab: 128256,
  merges: 280147,
  tokenizerModel: "gpt2",
  contextLength: 4096,
  weightType: I2_S,
  chatTemplate: TINY_CHAT_TEMPLATE,
};
/** A small BitNet with a 32k vocabulary. */
const BITNET_SMALL: HeaderSpec = {
  arch: "bitnet",
  name: "bitnet_b1_58-large",
  fileType: 40,
  layers: 24,
  embd: 1536,
  ff: 4096,
  vocab: 32002,
  merges: 0,
  tokenizerModel: "llama",
  contextLength: 2048,
  weightType: I2_S,
};

/** A safetensors header for a llama-like model of `layers` layers (real tensor names and shapes). */
function llamaSafetensorsTensors(layers: number, embd: number, ff: number, vocab: number): TensorSpec[] {
  const t: TensorSpec[] = [{ name: "model.embed_tokens.weight", dtype: "BF16", shape: [vocab, embd] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    t.push({ name: `${p}.input_layernorm.weight`, dtype: "BF16", shape: [embd] });
    for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"]) t.push({ name: `${p}.self_attn.${n}.weight`, dtype: "BF16", shape: [embd, embd] });
    t.push({ name: `${p}.post_attention_layernorm.weight`, dtype: "BF16", shape: [embd] });
    t.push({ name: `${p}.mlp.gate_proj.weight`, dtype: "BF16", shape: [ff, embd] });
    t.push({ name: `${p}.mlp.up_proj.weight`, dtype: "BF16", shape: [ff, embd] });
    t.push({ name: `${p}.mlp.down_proj.weight`, dtype: "BF16", shape: [embd, ff] });
  }
  t.push({ name: "model.norm.weight", dtype: "BF16", shape: [embd] }, { name: "lm_head.weight", dtype: "BF16", shape: [vocab, embd] });
  return t;
}

function bertTensors(layers: number, embd: number): TensorSpec[] {
  const t: TensorSpec[] = [{ name: "embeddings.word_embeddings.weight", dtype: "F32", shape: [30522, embd] }];
  for (let l = 0; l < layers; l++) {
    const p = `encoder.layer.${l}`;
    for (const n of ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]) {
      t.push({ name: `${p}.${n}.weight`, dtype: "F32", shape: [embd, embd] }, { name: `${p}.${n}.bias`, dtype: "F32", shape: [embd] });
    }
    t.push(
      { name: `${p}.intermediate.dense.weight`, dtype: "F32", shape: [embd * 4, embd] },
      { name: `${p}.output.dense.weight`, dtype: "F32", shape: [embd, embd * 4] },
    );
  }
  return t;
}

/** Header and data offsets of a real file, written as the header plus a sparse tail of the data's size. */
function safetensorsHeader(tensors: TensorSpec[]): { head: Uint8Array; apparent: number } {
  const { header, dataBytes } = safetensorsHeaderObject(tensors, { format: "pt" });
  const head = encodeSafetensors(JSON.stringify(header), 0);
  return { head, apparent: head.length + dataBytes };
}

/** A decoder graph of optimum's shape: thousands of nodes, weights in external data. */
function bigDecoderOnnx(layers: number, nodesPerLayer: number): Uint8Array {
  const nodes: NodeSpec[] = [];
  const ops = ["MatMul", "Add", "Mul", "Reshape", "Transpose", "Softmax", "SimplifiedLayerNormalization", "Gather", "Concat", "Unsqueeze"];
  for (let l = 0; l < layers; l++) {
    for (let n = 0; n < nodesPerLayer; n++)
      nodes.push({ op: ops[n % ops.length]!, inputs: [`/model/layers.${l}/in_${n}`, `w${l}_${n}`], outputs: [`/model/layers.${l}/out_${n}`] });
  }
  const initializers = Array.from({ length: layers * 9 }, (_, i) => ({
    name: `model.layers.${Math.floor(i / 9)}.w${i % 9}`,
    dims: [2048, 2048],
    external: { location: "model.onnx_data", offset: i * 2048 * 2048 * 4, length: 2048 * 2048 * 4 },
  }));
  return writeOnnx(decoderSpec(layers, { nodes, initializers }));
}

interface Writer {
  file(path: string, content: string | Uint8Array | object, apparent?: number): Promise<void>;
}

export async function buildDetectFolder(dir: string): Promise<DetectFolderSummary> {
  await mkdir(dir, { recursive: true });
  const kinds: Record<string, number> = {};
  const kindOf = new Map<string, string>();
  let entries = 0;
  let expectedModels = 0;
  let writtenBytes = 0;
  let apparentBytes = 0;
  const w: Writer = {
    async file(path, content, apparent) {
      const full = join(dir, path);
      await mkdir(dirname(full), { recursive: true });
      const bytes = typeof content === "string" || content instanceof Uint8Array ? content : JSON.stringify(content);
      const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length;
      if (apparent === undefined || apparent <= size) {
        await writeFile(full, bytes);
        writtenBytes += size;
        apparentBytes += size;
        return;
      }
      const h = await open(full, "w");
      try {
        await h.write(typeof bytes === "string" ? Buffer.from(bytes) : bytes);
        await h.truncate(Math.round(apparent)); // a sparse tail: the weights' size without the weights
      } finally {
        await h.close();
      }
      writtenBytes += size;
      apparentBytes += Math.round(apparent);
    },
  };
  const entry = async (kind: string, models: number, write: () => Promise<void>) => {
    const before = new Set(await readdir(dir));
    await write();
    for (const name of await readdir(dir)) if (!before.has(name)) kindOf.set(name, kind);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    entries++;
    expectedModels += models;
  };
  const GB = 2 ** 30;

  // --- GGUF: 108 top-level entries ---
  const tinyChat = makeTinyChatModel();
  const tinyEmbed = makeTinyEmbeddingModel();
  for (let i = 0; i < 8; i++) await entry("gguf: tiny chat (real tensors, 0.5 MB)", 1, () => w.file(`tiny-chat-${i}.gguf`, tinyChat));
  for (let i = 0; i < 4; i++) await entry("gguf: tiny embedding (real tensors)", 1, () => w.file(`tiny-embed-${i}.gguf`, tinyEmbed));
  const llama2 = headerOnlyGguf(LLAMA2);
  for (let i = 0; i < 44; i++) await entry("gguf: llama-2-7b header, 32k vocab (sparse 4 GB)", 1, () => w.file(`llama-2-7b-chat-${i}.Q4_K_M.gguf`, llama2, 4.08 * GB));
  const qwen = headerOnlyGguf(QWEN25);
  for (let i = 0; i < 20; i++) await entry("gguf: qwen2.5-7b header, 152k vocab + 151k merges", 1, () => w.file(`qwen2.5-7b-instruct-${i}-q4_k_m.gguf`, qwen, 4.68 * GB));
  const llama3 = headerOnlyGguf(LLAMA3);
  for (let i = 0; i < 12; i++)
    await entry("gguf: llama-3.1-8b header, 128k vocab + 280k merges", 1, () => w.file(`Meta-Llama-3.1-8B-Instruct-${i}-Q4_K_M.gguf`, llama3, 4.92 * GB));
  const bitnet = headerOnlyGguf(BITNET);
  for (let i = 0; i < 6; i++) await entry("gguf: BitNet I2_S (type 36), 128k vocab", 1, () => w.file(`bitnet-b1.58-2B-4T-${i}-i2_s.gguf`, bitnet, 1.19 * GB));
  const bitnetSmall = headerOnlyGguf(BITNET_SMALL);
  for (let i = 0; i < 6; i++) await entry("gguf: BitNet I2_S (type 36), 32k vocab", 1, () => w.file(`bitnet_b1_58-large-${i}-i2_s.gguf`, bitnetSmall, 0.45 * GB));
  // Folders of GGUF files: a split model with its vision projector; a folder of several quantizations.
  for (let i = 0; i < 4; i++) {
    await entry("gguf folder: split model (2 shards) + mmproj", 1, async () => {
      await w.file(`llava-split-${i}/llava-v1.6-7b-${i}-Q4_K_M-00001-of-00002.gguf`, llama2, 2 * GB);
      await w.file(`llava-split-${i}/llava-v1.6-7b-${i}-Q4_K_M-00002-of-00002.gguf`, llama2, 2 * GB);
      await w.file(`llava-split-${i}/mmproj-model-f16.gguf`, tinyEmbed);
    });
  }
  for (let i = 0; i < 4; i++) {
    await entry("gguf folder: 3 quantizations of one model", 3, async () => {
      for (const q of ["Q4_K_M", "Q5_K_M", "Q8_0"]) await w.file(`mistral-quants-${i}/mistral-7b-instruct-v0.${i}-${q}.gguf`, llama2, 4 * GB);
    });
  }

  // --- safetensors (transformers) folders: 40 ---
  const chatTemplate = {
    chat_template: TINY_CHAT_TEMPLATE,
    bos_token: "<s>",
    eos_token: "</s>",
    added_tokens_decoder: Object.fromEntries(Array.from({ length: 256 }, (_, i) => [String(128000 + i), { content: `<|reserved_special_token_${i}|>`, special: true }])),
  };
  const llamaSt = safetensorsHeader(llamaSafetensorsTensors(16, 2048, 8192, 128256));
  for (let i = 0; i < 16; i++) {
    await entry("safetensors: causal LM (147 tensors), chat template", 1, async () => {
      const d = `Llama-3.2-1B-Instruct-${i}`;
      await w.file(`${d}/config.json`, {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        max_position_embeddings: 131072,
        torch_dtype: "bfloat16",
        hidden_size: 2048,
        num_hidden_layers: 16,
      });
      await w.file(`${d}/generation_config.json`, { bos_token_id: 128000, eos_token_id: [128001, 128009] });
      await w.file(`${d}/model.safetensors`, llamaSt.head, llamaSt.apparent);
      await w.file(`${d}/tokenizer.json`, { version: "1.0", model: { type: "BPE" } });
      await w.file(`${d}/tokenizer_config.json`, chatTemplate);
      await w.file(`${d}/special_tokens_map.json`, {});
      await w.file(`${d}/README.md`, "# model card\n");
    });
  }
  const shardTensors = llamaSafetensorsTensors(32, 4096, 14336, 128256);
  const half = Math.ceil(shardTensors.length / 2);
  const shardA = safetensorsHeader(shardTensors.slice(0, half));
  const shardB = safetensorsHeader(shardTensors.slice(half));
  const weightMap = Object.fromEntries(shardTensors.map((t, k) => [t.name, k < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"]));
  for (let i = 0; i < 8; i++) {
    await entry("safetensors: sharded causal LM (291 tensors, index.json)", 1, async () => {
      const d = `Meta-Llama-3.1-8B-Instruct-hf-${i}`;
      await w.file(`${d}/config.json`, { architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 131072, torch_dtype: "bfloat16" });
      await w.file(`${d}/model.safetensors.index.json`, { metadata: { total_size: shardA.apparent + shardB.apparent }, weight_map: weightMap });
      await w.file(`${d}/model-00001-of-00002.safetensors`, shardA.head, shardA.apparent);
      await w.file(`${d}/model-00002-of-00002.safetensors`, shardB.head, shardB.apparent);
      await w.file(`${d}/tokenizer.json`, { model: { type: "BPE" } });
      await w.file(`${d}/tokenizer_config.json`, chatTemplate);
    });
  }
  const bertSt = safetensorsHeader(bertTensors(6, 384));
  for (let i = 0; i < 10; i++) {
    await entry("safetensors: sentence-transformers encoder", 1, async () => {
      const d = `all-MiniLM-L6-v2-${i}`;
      await w.file(`${d}/config.json`, { architectures: ["BertModel"], model_type: "bert", max_position_embeddings: 512, hidden_size: 384 });
      await w.file(`${d}/model.safetensors`, bertSt.head, bertSt.apparent);
      await w.file(`${d}/modules.json`, [
        { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
        { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
      ]);
      await w.file(`${d}/1_Pooling/config.json`, { word_embedding_dimension: 384, pooling_mode_mean_tokens: true });
      await w.file(`${d}/sentence_bert_config.json`, { max_seq_length: 256 });
      await w.file(`${d}/vocab.txt`, "[PAD]\n[UNK]\n");
      await w.file(`${d}/tokenizer.json`, { model: { type: "WordPiece" } });
    });
  }
  for (let i = 0; i < 6; i++) {
    await entry("safetensors: sequence classifier", 1, async () => {
      const d = `distilbert-sst2-${i}`;
      await w.file(`${d}/config.json`, {
        architectures: ["DistilBertForSequenceClassification"],
        model_type: "distilbert",
        max_position_embeddings: 512,
        id2label: { 0: "NEGATIVE", 1: "POSITIVE" },
      });
      await w.file(`${d}/model.safetensors`, bertSt.head, bertSt.apparent);
      await w.file(`${d}/tokenizer.json`, { model: { type: "WordPiece" } });
    });
  }

  // --- ONNX: 24 single files, 14 folders ---
  const onnxKinds = [
    ["encoder", writeOnnx(encoderSpec())],
    ["classifier", writeOnnx(classifierSpec())],
    ["decoder", writeOnnx(decoderSpec(4))],
  ] as const;
  for (let i = 0; i < 24; i++) {
    const [kind, bytes] = onnxKinds[i % 3]!;
    await entry(`onnx: single file (${kind === "decoder" ? "decoder with KV cache" : kind})`, 1, () => w.file(`${kind}-${i}.onnx`, bytes));
  }
  const bigDecoder = bigDecoderOnnx(16, 120);
  for (let i = 0; i < 8; i++) {
    await entry("onnx folder: optimum decoder (1920 nodes, external data), chat", 1, async () => {
      const d = `Llama-3.2-1B-Instruct-onnx-${i}`;
      await w.file(`${d}/config.json`, { architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 131072 });
      await w.file(`${d}/tokenizer_config.json`, chatTemplate);
      await w.file(`${d}/tokenizer.json`, { model: { type: "BPE" } });
      await w.file(`${d}/generation_config.json`, {});
      await w.file(`${d}/model.onnx`, bigDecoder);
      await w.file(`${d}/model.onnx_data`, new Uint8Array(0), 16 * 9 * 2048 * 2048 * 4);
    });
  }
  const encoder = writeOnnx(encoderSpec());
  for (let i = 0; i < 6; i++) {
    await entry("onnx folder: transformers.js encoder (onnx/ variants)", 1, async () => {
      const d = `Xenova-all-MiniLM-L6-v2-${i}`;
      await w.file(`${d}/config.json`, { architectures: ["BertModel"], model_type: "bert", max_position_embeddings: 512 });
      await w.file(`${d}/tokenizer.json`, "{}");
      for (const v of ["model", "model_quantized", "model_fp16"]) await w.file(`${d}/onnx/${v}.onnx`, encoder);
    });
  }

  // --- LiteRT: 8 .tflite files ---
  const tflite = writeTflite({
    description: "MLIR Converted.",
    subgraphs: ["prefill", "decode"],
    signatures: [
      { key: "prefill", inputs: ["tokens", "input_pos", "kv_cache_k_0"], outputs: ["kv_cache_k_0"] },
      { key: "decode", inputs: ["tokens", "input_pos"], outputs: ["logits"] },
    ],
  });
  const classifierTflite = writeTflite({
    description: "TOCO Converted.",
    metadata: ["min_runtime_version"],
    signatures: [{ key: "serving_default", inputs: ["image"], outputs: ["probs"] }],
  });
  for (let i = 0; i < 8; i++) {
    await entry("tflite (TFL3)", 1, () =>
      w.file(i % 2 === 0 ? `gemma-2b-it-cpu-int4-${i}.tflite` : `mobilenet_v2-${i}.tflite`, i % 2 === 0 ? tflite : classifierTflite, i % 2 === 0 ? 1.3 * GB : 14e6),
    );
  }

  // --- not models: skipped without parsing (by name) or after a look ---
  await entry("other: README.md", 0, () => w.file("README.md", "# my models\n"));
  await entry("other: notes.txt", 0, () => w.file("notes.txt", "downloaded 2026-11\n"));
  await entry("other: top-level mmproj (skipped by name)", 0, () => w.file("mmproj-clip-f16.gguf", tinyEmbed));
  await entry("other: truncated .gguf (warning)", 0, () => w.file("broken-download.gguf", llama2.subarray(0, 4096)));
  await entry("other: folder of text files", 0, async () => {
    await w.file("scratch/notes.md", "nothing here\n");
    await w.file("scratch/prompt.txt", "hello\n");
  });
  await entry("other: .safetensors that is not (warning)", 0, () => w.file("weights-backup.safetensors", new Uint8Array(64)));
  return { dir, entries, expectedModels, kinds, kindOf, writtenBytes, apparentBytes };
}
