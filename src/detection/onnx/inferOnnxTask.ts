import type { DetectedTask } from "../../core/detectionSchema.js";
import { jsonObject, jsonString, type JsonObject } from "./readJsonFile.js";
import type { OnnxSummary, OnnxValueInfo } from "./readOnnxSummary.js";

export interface TaskDecision {
  task: DetectedTask;
  /** What decided, for `Detection.reason`. */
  reason: string;
}

/** model_type values of encoder-decoder text models (when `is_encoder_decoder` is not written). */
const SEQ2SEQ_TYPES = new Set([
  "t5",
  "mt5",
  "umt5",
  "longt5",
  "bart",
  "mbart",
  "marian",
  "pegasus",
  "pegasus_x",
  "m2m_100",
  "nllb_moe",
  "blenderbot",
  "blenderbot-small",
  "led",
  "prophetnet",
  "fsmt",
  "mvp",
  "plbart",
  "bigbird_pegasus",
]);

/** Bare encoders exported as `XxxModel`: their hidden states are embeddings. */
const ENCODER_TYPES = new Set([
  "bert",
  "roberta",
  "xlm-roberta",
  "distilbert",
  "mpnet",
  "albert",
  "electra",
  "deberta",
  "deberta-v2",
  "camembert",
  "nomic_bert",
  "modernbert",
  "jina_bert",
  "new",
  "gte",
  "e5",
  "bge",
  "xlm",
  "ernie",
  "nezha",
  "mobilebert",
  "roformer",
  "luke",
  "clip_text_model",
  "siglip_text_model",
]);

/** Decoder model_type values, for configs written without `architectures`. */
const DECODER_TYPES = new Set([
  "llama",
  "mistral",
  "mixtral",
  "qwen2",
  "qwen3",
  "qwen2_moe",
  "phi",
  "phi3",
  "phimoe",
  "gemma",
  "gemma2",
  "gemma3_text",
  "gpt2",
  "gpt_neox",
  "gptj",
  "gpt_bigcode",
  "opt",
  "bloom",
  "falcon",
  "stablelm",
  "starcoder2",
  "olmo",
  "olmo2",
  "granite",
  "smollm3",
  "cohere",
  "codegen",
  "mpt",
]);

export interface ConfigContext {
  hasChatTemplate: boolean;
  /** A sentence-transformers file (modules.json, config_sentence_transformers.json, ...) and its name. */
  sentenceTransformers: string | null;
}

function generator(ctx: ConfigContext, what: string): TaskDecision {
  return ctx.hasChatTemplate ? { task: "chat", reason: `${what}, with a chat template` } : { task: "text-generation", reason: `${what}, no chat template` };
}

/** The task config.json states, or null when it does not settle it. */
export function taskFromConfig(config: JsonObject | null, ctx: ConfigContext): TaskDecision | null {
  if (ctx.sentenceTransformers) return { task: "embeddings", reason: `sentence-transformers (${ctx.sentenceTransformers})` };
  if (!config) return null;
  const archs = Array.isArray(config["architectures"]) ? config["architectures"] : [];
  const arch = jsonString(archs[0]);
  const modelType = jsonString(config["model_type"])?.toLowerCase() ?? null;
  const src = `config.json: ${arch ?? `model_type ${modelType ?? "?"}`}`;
  if (modelType === "whisper" || (arch && /Whisper|ForSpeechSeq2Seq$|ForCTC$/.test(arch))) {
    return { task: "speech-recognition", reason: src };
  }
  if (arch) {
    if (/ForSequenceClassification$/.test(arch)) return { task: "text-classification", reason: src };
    if (/ForTokenClassification$/.test(arch)) return { task: "token-classification", reason: src };
    if (/ForImageClassification$/.test(arch)) return { task: "image-classification", reason: src };
    if (/ForCausalLM$|LMHeadModel$/.test(arch)) return generator(ctx, src);
    if (/ForConditionalGeneration$|MTModel$|ForSeq2SeqLM$/.test(arch)) {
      const textConfig = jsonObject(config["text_config"]);
      const encDec = config["is_encoder_decoder"] === true || (modelType !== null && SEQ2SEQ_TYPES.has(modelType));
      if (encDec && !textConfig) return { task: "text2text", reason: `${src} (encoder-decoder)` };
      return generator(ctx, src);
    }
    if (/^T5EncoderModel$/.test(arch) || (/Model$/.test(arch) && modelType !== null && ENCODER_TYPES.has(modelType))) {
      return { task: "embeddings", reason: `${src} (bare encoder)` };
    }
    return null;
  }
  if (modelType !== null && DECODER_TYPES.has(modelType)) return generator(ctx, src);
  return null;
}

/** onnxruntime-genai only runs generators (and Whisper). */
export function taskFromGenaiConfig(genai: JsonObject, ctx: ConfigContext): TaskDecision {
  const type = jsonString(jsonObject(genai["model"])?.["type"]) ?? "?";
  const src = `genai_config.json: model.type = ${type}`;
  if (type.toLowerCase() === "whisper") return { task: "speech-recognition", reason: src };
  return generator(ctx, src);
}

const EMBEDDING_OUTPUTS = /^(last_hidden_state|sentence_embedding|token_embeddings|pooler_output|embeddings?|text_embeds|sentence_embeddings)$/;

function has(list: OnnxValueInfo[], test: (name: string) => boolean): OnnxValueInfo | undefined {
  return list.find((v) => test(v.name));
}

/** The task the graph's inputs and outputs suggest; always decides (unknown with a reason at worst). */
export function taskFromGraph(summary: OnnxSummary, ctx: ConfigContext, encoderDecoder: boolean): TaskDecision {
  const { inputs, outputs } = summary;
  const past = has(inputs, (n) => n.startsWith("past_key_values") || n.startsWith("past_key") || /^past[._]/.test(n));
  const present = has(outputs, (n) => n.startsWith("present"));
  if (has(inputs, (n) => n === "input_features")) {
    return { task: "speech-recognition", reason: "graph: input_features input (audio encoder)" };
  }
  if (past || present) {
    const what = `graph: ${past ? `input ${past.name}` : `output ${present!.name}`} (decoder with KV cache)`;
    if (encoderDecoder) return { task: "text2text", reason: `${what} next to an encoder_model` };
    return generator(ctx, what);
  }
  const logits = has(outputs, (n) => n === "logits");
  if (has(inputs, (n) => n === "pixel_values") && logits?.shape?.length === 2) {
    return { task: "image-classification", reason: "graph: pixel_values input, logits output of rank 2" };
  }
  const ids = has(inputs, (n) => n === "input_ids");
  const mask = has(inputs, (n) => n === "attention_mask");
  const embedding = has(outputs, (n) => EMBEDDING_OUTPUTS.test(n));
  if (ids && mask && embedding) {
    return { task: "embeddings", reason: `graph: input_ids + attention_mask inputs, ${embedding.name} output` };
  }
  if (logits?.shape?.length === 2) return { task: "text-classification", reason: "graph: logits output of rank 2" };
  if (logits?.shape?.length === 3) {
    return { task: "unknown", reason: "graph: logits of rank 3 without past_key_values (a causal LM without cache or a token classifier)" };
  }
  const names = (l: OnnxValueInfo[]): string =>
    l
      .slice(0, 4)
      .map((v) => v.name)
      .join(", ") + (l.length > 4 ? ", ..." : "");
  return { task: "unknown", reason: `graph: inputs [${names(inputs)}] and outputs [${names(outputs)}] match no known task` };
}
