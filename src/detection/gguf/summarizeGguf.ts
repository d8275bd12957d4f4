import type { ModelTask } from "../../core/types.js";
import type { GgufHeader, GgufValue } from "./readGgufHeader.js";

/** Encoder architectures llama.cpp runs as embedding models. */
const EMBEDDING_ARCHITECTURES = new Set([
  "bert",
  "nomic-bert",
  "nomic-bert-moe",
  "jina-bert-v2",
  "jina-bert-v3",
  "neo-bert",
  "modern-bert",
  "t5encoder",
  "gemma-embedding",
  "llama-embed",
]);

/** llama.cpp's LLAMA_POOLING_TYPE_RANK: the model scores a (query, document) pair (llama-server --reranking). */
const RANK_POOLING = 4;

interface GgufSummary {
  architecture: string | null;
  name: string | null;
  contextLength: number | null;
  chatTemplate: string | null;
  /** llama.cpp pooling type: 0 none, 1 mean, 2 cls, 3 last, 4 rank. */
  poolingType: number | null;
  fileType: number | null;
  generalType: string | null;
  task: ModelTask;
  /** Why the task was chosen, for logs and `tabagent models`. */
  taskReason: string;
}

function str(v: GgufValue | undefined): string | null {
  return typeof v === "string" ? v : null;
}

function num(v: GgufValue | undefined): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return null;
}

export function summarizeGguf(header: GgufHeader): GgufSummary {
  const md = header.metadata;
  const architecture = str(md.get("general.architecture"));
  const arch = architecture ?? "";
  const chatTemplate = str(md.get("tokenizer.chat_template"));
  const poolingType = num(md.get(`${arch}.pooling_type`));
  let task: ModelTask;
  let taskReason: string;
  if (poolingType === RANK_POOLING) {
    task = "rerank";
    taskReason = `${arch}.pooling_type = 4 (rank): a reranker`;
  } else if (EMBEDDING_ARCHITECTURES.has(arch)) {
    task = "embeddings";
    taskReason = `architecture '${arch}' is an encoder`;
  } else if (poolingType !== null && poolingType > 0) {
    task = "embeddings";
    taskReason = `${arch}.pooling_type = ${poolingType}`;
  } else if (chatTemplate) {
    task = "chat";
    taskReason = "tokenizer.chat_template is present";
  } else {
    task = "text-generation";
    taskReason = "decoder without a chat template";
  }
  return {
    architecture,
    name: str(md.get("general.name")),
    contextLength: num(md.get(`${arch}.context_length`)),
    chatTemplate,
    poolingType,
    fileType: num(md.get("general.file_type")),
    generalType: str(md.get("general.type")),
    task,
    taskReason,
  };
}
