import type { DetectedTask } from "../../core/detectionSchema.js";

interface TransformersTaskInput {
  architectures: string[];
  modelType: string | null;
  /** Where the chat template was found (`tokenizer_config.json chat_template`), null when there is none. */
  chatTemplateSource: string | null;
  /** The sentence-transformers file that marks the folder (`modules.json`), null when there is none. */
  sentenceTransformersMarker: string | null;
  /** config.json's label count (`num_labels`, else the size of `id2label`); null when it names none. */
  numLabels?: number | null;
}

interface TransformersTask {
  task: DetectedTask;
  /** One line naming the file and key that decided. */
  reason: string;
}

/** Encoder-decoder text families: their `…ForConditionalGeneration` maps text to text. */
const SEQ2SEQ_TYPES = new Set([
  "t5",
  "mt5",
  "umt5",
  "longt5",
  "switch_transformers",
  "t5gemma",
  "bart",
  "mbart",
  "marian",
  "pegasus",
  "pegasus_x",
  "bigbird_pegasus",
  "led",
  "m2m_100",
  "nllb-moe",
  "fsmt",
  "prophetnet",
  "xlm-prophetnet",
  "blenderbot",
  "blenderbot-small",
  "plbart",
  "mvp",
  "encoder-decoder",
]);

/** The same families by class name, for configs without `model_type`. */
const SEQ2SEQ_ARCHITECTURE =
  /^(T5|MT5|UMT5|LongT5|SwitchTransformers|T5Gemma|Bart|MBart|Marian|Pegasus|PegasusX|BigBirdPegasus|LED|M2M100|NllbMoe|FSMT|ProphetNet|XLMProphetNet|Blenderbot|BlenderbotSmall|PLBart|Mvp)(ForConditionalGeneration|MTModel|WithLMHeadModel|Model)$/;

const SPEECH_ARCHITECTURE = /^(Whisper|Speech2Text|Moonshine)(ForConditionalGeneration|Model)$/;

const SPEECH_TYPES = new Set([
  "whisper",
  "speech_to_text",
  "speech_to_text_2",
  "moonshine",
  "wav2vec2",
  "wav2vec2-bert",
  "wav2vec2-conformer",
  "hubert",
  "wavlm",
  "data2vec-audio",
  "unispeech",
  "unispeech-sat",
  "sew",
  "sew-d",
  "mctct",
  "parakeet_ctc",
]);

/** Encoders whose bare `…Model` output is pooled into sentence embeddings. */
const ENCODER_TYPES = new Set([
  "bert",
  "roberta",
  "xlm-roberta",
  "xlm-roberta-xl",
  "mpnet",
  "nomic_bert",
  "distilbert",
  "deberta",
  "deberta-v2",
  "electra",
  "albert",
  "camembert",
  "modernbert",
  "new",
  "eurobert",
  "neobert",
  "jina_bert",
  "mobilebert",
  "ernie",
]);

const ENCODER_ARCHITECTURES = new Set([
  "BertModel",
  "RobertaModel",
  "XLMRobertaModel",
  "XLMRobertaXLModel",
  "MPNetModel",
  "NomicBertModel",
  "DistilBertModel",
  "DebertaModel",
  "DebertaV2Model",
  "ElectraModel",
  "AlbertModel",
  "CamembertModel",
  "ModernBertModel",
  "JinaBertModel",
  "NewModel",
  "EuroBertModel",
  "NeoBERT",
  "MobileBertModel",
  "ErnieModel",
]);

/** Decoder-only families, for configs that only give `model_type`. */
const DECODER_TYPES = new Set([
  "llama",
  "llama4_text",
  "mistral",
  "mixtral",
  "ministral",
  "qwen2",
  "qwen2_moe",
  "qwen3",
  "qwen3_moe",
  "gemma",
  "gemma2",
  "gemma3_text",
  "phi",
  "phi3",
  "phimoe",
  "gpt2",
  "gpt_neo",
  "gpt_neox",
  "gptj",
  "gpt_bigcode",
  "gpt_oss",
  "falcon",
  "opt",
  "bloom",
  "stablelm",
  "starcoder2",
  "olmo",
  "olmo2",
  "olmoe",
  "granite",
  "granitemoe",
  "cohere",
  "cohere2",
  "deepseek_v2",
  "deepseek_v3",
  "smollm3",
  "exaone",
  "mpt",
  "codegen",
  "mamba",
  "mamba2",
  "rwkv",
  "jamba",
  "nemotron",
  "glm",
  "glm4",
  "minicpm",
  "internlm2",
  "ernie4_5",
  "seed_oss",
  "apertus",
  "hunyuan_v1_dense",
]);

/** Heads that predict something this daemon does not serve. */
const UNSERVED_HEADS = [
  "ForMaskedLM",
  "ForPreTraining",
  "ForQuestionAnswering",
  "ForMultipleChoice",
  "ForNextSentencePrediction",
  "ForAudioClassification",
  "ForObjectDetection",
  "ForSemanticSegmentation",
  "ForDepthEstimation",
  "ForAudioFrameClassification",
  "ForXVector",
  "ForMaskedImageModeling",
  "ForZeroShotImageClassification",
];

function generative(source: string, chat: string | null, what: string): TransformersTask {
  return chat ? { task: "chat", reason: `${source} = ${what}, chat template in ${chat}` } : { task: "text-generation", reason: `${source} = ${what}, no chat template` };
}

/**
 * The task from config.json's `architectures[0]` (the head the checkpoint was saved with) and `model_type`, with
 * sentence-transformers files and chat templates as the deciding extras.
 */
export function classifyTransformersTask(input: TransformersTaskInput): TransformersTask {
  const { architectures, modelType, chatTemplateSource: chat, sentenceTransformersMarker: st } = input;
  const arch = architectures[0] ?? null;
  const type = modelType?.toLowerCase() ?? null;

  // A cross-encoder (reranker) saved by sentence-transformers keeps its classification head.
  const crossEncoder = arch?.endsWith("ForSequenceClassification") === true && st !== "modules.json";
  if (st && !crossEncoder) return { task: "embeddings", reason: `sentence-transformers model (${st})` };

  if (arch) {
    const src = "config.json architectures[0]";
    const is = (suffix: string): boolean => arch.endsWith(suffix);
    if (is("ForSequenceClassification")) {
      // One output label: a relevance score for a (query, document) pair, as sentence-transformers' CrossEncoder reads it.
      if (input.numLabels === 1) return { task: "rerank", reason: `${src} = ${arch} with one label: a cross-encoder (reranker)` };
      return { task: "text-classification", reason: `${src} = ${arch}` };
    }
    if (is("ForTokenClassification")) return { task: "token-classification", reason: `${src} = ${arch}` };
    if (is("ForImageClassification") || is("ForImageClassificationWithTeacher")) {
      return { task: "image-classification", reason: `${src} = ${arch}` };
    }
    const head = UNSERVED_HEADS.find((h) => is(h));
    if (head) return { task: "unknown", reason: `${src} = ${arch}: the ${head.slice(3)} head is not a served task` };
    const speech = is("ForCTC") || is("ForSpeechSeq2Seq") || arch === "SpeechEncoderDecoderModel" || SPEECH_ARCHITECTURE.test(arch);
    if (speech || (type !== null && SPEECH_TYPES.has(type))) {
      return { task: "speech-recognition", reason: `${src} = ${arch}${type ? ` (model_type ${type})` : ""}` };
    }
    if (((type !== null && SEQ2SEQ_TYPES.has(type)) || SEQ2SEQ_ARCHITECTURE.test(arch)) && !is("EncoderModel")) {
      return { task: "text2text", reason: `${src} = ${arch} (encoder-decoder${type ? ` model_type ${type}` : ""})` };
    }
    if (is("ForCausalLM") || is("LMHeadModel")) return generative(src, chat, arch);
    if (is("ForConditionalGeneration") || is("ForVision2Seq") || is("ForImageTextToText")) {
      // Multimodal decoders (llava, gemma3, qwen2-vl, ...): chat when they ship a template.
      if (chat) return { task: "chat", reason: `${src} = ${arch} (multimodal), chat template in ${chat}` };
      return { task: "unknown", reason: `${src} = ${arch}: a conditional-generation model of an unknown family without a chat template` };
    }
    if (ENCODER_ARCHITECTURES.has(arch) || is("EncoderModel") || (type !== null && ENCODER_TYPES.has(type) && is("Model"))) {
      return { task: "embeddings", reason: `${src} = ${arch} (encoder without a task head)` };
    }
    if (type !== null && DECODER_TYPES.has(type) && is("Model")) {
      return { task: "embeddings", reason: `${src} = ${arch}: a ${type} decoder without an LM head (embedding export)` };
    }
    return { task: "unknown", reason: `${src} = ${arch} is not a known head` };
  }

  if (type !== null) {
    const src = "config.json model_type";
    if (SPEECH_TYPES.has(type)) return { task: "speech-recognition", reason: `${src} = ${type}` };
    if (SEQ2SEQ_TYPES.has(type)) return { task: "text2text", reason: `${src} = ${type}` };
    if (ENCODER_TYPES.has(type)) return { task: "embeddings", reason: `${src} = ${type} (encoder)` };
    if (DECODER_TYPES.has(type)) return generative(src, chat, type);
    return { task: "unknown", reason: `${src} = ${type} is not a known family` };
  }
  return { task: "unknown", reason: "config.json has neither architectures nor model_type" };
}
