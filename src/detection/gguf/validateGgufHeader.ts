import { BITNET_GGML_TYPES, MAINLINE_GGML_BLOCKS, ggmlTypeName } from "./ggmlTypes.js";
import type { GgufHeader, GgufValue } from "./readGgufHeader.js";

interface GgufValidation {
  /** Why llama.cpp would refuse the file, or abort the process loading it; empty when it should load. */
  problems: string[];
  /** Oddities that do not stop a load. */
  warnings: string[];
}

interface ValidateGgufOptions {
  /** Size of the file the header came from. */
  fileSize: number;
  /** The BitNet fork's types (36-39) have sizes detection does not know: their layout is not checked. */
  bitnet: boolean;
}

/** No released model comes near this (the longest today declare about 10M tokens). */
const MAX_GGUF_CONTEXT_LENGTH = 1 << 27;

const V = { U32: 4, I32: 5, F32: 6, STRING: 8, ARRAY: 9 };

/** Tokenizer models llama.cpp's vocabulary loader knows (`llama_vocab::impl::load`); any other is a load error. */
const TOKENIZER_MODELS = new Set(["no_vocab", "none", "llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv", "plamo2", "gemma4"]);
/** BPE tokenizers, which need `tokenizer.ggml.merges`. */
const NEEDS_MERGES = new Set(["gpt2", "hybriddna", "whitespace", "gemma4"]);

/** Special token ids llama.cpp reads as uint32 (a wrong type is a load error) and indexes the vocabulary with. */
const SPECIAL_TOKEN_KEYS = [
  "bos",
  "eos",
  "eot",
  "eom",
  "unknown",
  "seperator",
  "padding",
  "cls",
  "mask",
  "fim_pre",
  "fim_suf",
  "fim_mid",
  "fim_pad",
  "fim_rep",
  "fim_sep",
  "prefix",
  "suffix",
  "middle",
].map((k) => `tokenizer.ggml.${k}_token_id`);

function arrayInfo(header: GgufHeader, key: string): { arrayType: number; length: number } | null {
  const v: GgufValue | undefined = header.metadata.get(key);
  return typeof v === "object" && v !== null && "arrayType" in v ? v : null;
}

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, "0");
}

/**
 * Checks a parsed GGUF header against what llama.cpp needs to load it: the tensor data layout gguf.cpp insists on
 * (each tensor where the previous one ends, padded to the alignment, inside the file), a sane context length, and a
 * vocabulary its loader accepts without throwing or aborting. Reads nothing: the header (with its token scan) is
 * all it needs.
 */
export function validateGgufHeader(header: GgufHeader, options: ValidateGgufOptions): GgufValidation {
  const problems: string[] = [];
  const warnings: string[] = [];
  checkTensors(header, options, problems);
  checkContextLength(header, problems);
  checkVocabulary(header, problems, warnings);
  return { problems, warnings };
}

function checkTensors(header: GgufHeader, options: ValidateGgufOptions, problems: string[]): void {
  if (header.tensors.length === 0) {
    problems.push("no tensors (a vocabulary-only file is not a model)");
    return;
  }
  const { alignment, dataStart } = header;
  let expected = 0;
  let layoutKnown = true;
  for (const t of header.tensors) {
    const block = options.bitnet && BITNET_GGML_TYPES[t.type] !== undefined ? undefined : MAINLINE_GGML_BLOCKS[t.type];
    const offset = Number(t.offset);
    if (!block) {
      // Sizes of this type are unknown here: only where it starts can be checked.
      layoutKnown = false;
      if (offset % alignment !== 0) problems.push(`tensor ${t.name} starts at data offset ${offset}, not a multiple of the alignment ${alignment}`);
      continue;
    }
    const [perBlock, blockBytes] = block;
    const elements = t.dims.reduce((a, b) => a * b, 1);
    const rowLength = t.dims[0] ?? 1;
    if (rowLength % perBlock !== 0) {
      problems.push(`tensor ${t.name}: rows of ${rowLength} elements are not a multiple of the ${ggmlTypeName(t.type, options.bitnet)} block of ${perBlock}`);
      return;
    }
    const bytes = (elements / perBlock) * blockBytes;
    if (layoutKnown && offset !== expected) {
      problems.push(`tensor ${t.name} is at data offset ${offset}, but the tensors before it end at ${expected} (llama.cpp requires them back to back)`);
      return;
    }
    if (dataStart + offset + bytes > options.fileSize) {
      problems.push(`tensor ${t.name} (${bytes} bytes at byte ${dataStart + offset}) runs past the end of the ${options.fileSize}-byte file (truncated?)`);
      return;
    }
    expected = offset + padTo(bytes, alignment);
  }
}

function checkContextLength(header: GgufHeader, problems: string[]): void {
  const arch = header.metadata.get("general.architecture");
  if (typeof arch !== "string") return;
  const key = `${arch}.context_length`;
  if (!header.metadata.has(key)) return;
  const v = header.metadata.get(key);
  if (header.types.get(key) !== V.U32 || typeof v !== "number") {
    problems.push(`${key} is not a uint32, the only type llama.cpp reads it as (value ${typeof v === "object" ? "an array" : String(v)})`);
  } else if (v === 0 || v > MAX_GGUF_CONTEXT_LENGTH) {
    problems.push(`${key} = ${v} is implausible (expected 1 to ${MAX_GGUF_CONTEXT_LENGTH})`);
  }
}

function checkVocabulary(header: GgufHeader, problems: string[], warnings: string[]): void {
  const md = header.metadata;
  const arch = md.get("general.architecture");
  if (arch === "clip" || md.get("general.type") === "mmproj") return; // projectors carry no vocabulary
  if (!md.has("tokenizer.ggml.model")) {
    warnings.push("no tokenizer.ggml.model: llama.cpp loads a model only with its vocabulary");
    return;
  }
  const model = md.get("tokenizer.ggml.model");
  if (typeof model !== "string") {
    problems.push("tokenizer.ggml.model is not a string");
    return;
  }
  if (!TOKENIZER_MODELS.has(model)) {
    problems.push(`tokenizer.ggml.model '${model.slice(0, 64)}' is not a tokenizer llama.cpp knows`);
    return;
  }
  if (model === "none" || model === "no_vocab") return;

  const tokens = arrayInfo(header, "tokenizer.ggml.tokens");
  if (!tokens) {
    problems.push(md.has("tokenizer.ggml.tokens") ? "tokenizer.ggml.tokens is not an array" : "no tokenizer.ggml.tokens (the vocabulary)");
    return;
  }
  if (tokens.arrayType !== V.STRING) {
    problems.push("tokenizer.ggml.tokens is not an array of strings");
    return;
  }
  const n = tokens.length;
  if (n === 0) {
    problems.push("the vocabulary (tokenizer.ggml.tokens) is empty");
    return;
  }
  if (n > 0x7fffffff) problems.push(`the vocabulary has ${n} tokens, more than a token id can number`);

  const lengthCheck = (key: string, types: number[], what: string): void => {
    if (!md.has(key)) return;
    const a = arrayInfo(header, key);
    if (!a || !types.includes(a.arrayType)) problems.push(`${key} is not an array of ${what}`);
    else if (a.length < n) problems.push(`${key} has ${a.length} entries for ${n} tokens`);
    else if (a.length > n) warnings.push(`${key} has ${a.length} entries for ${n} tokens`);
  };
  lengthCheck("tokenizer.ggml.scores", [V.F32, V.I32], "float32 or int32");
  lengthCheck("tokenizer.ggml.token_type", [V.I32], "int32");

  const pre = md.get("tokenizer.ggml.pre");
  if (NEEDS_MERGES.has(model) && !(model !== "gemma4" && pre === "kimi-k2")) {
    const merges = arrayInfo(header, "tokenizer.ggml.merges");
    if (!merges) problems.push(`a ${model} tokenizer needs tokenizer.ggml.merges, which is missing`);
    else if (merges.arrayType !== V.STRING) problems.push("tokenizer.ggml.merges is not an array of strings");
  }

  for (const key of SPECIAL_TOKEN_KEYS) {
    if (!md.has(key)) continue;
    const id = md.get(key);
    // llama.cpp does not read cls_token_id itself: only its range matters (to whoever uses it).
    const strict = key !== "tokenizer.ggml.cls_token_id";
    if (typeof id !== "number" && typeof id !== "bigint") problems.push(`${key} is not a number`);
    else if (strict && header.types.get(key) !== V.U32) problems.push(`${key} is not a uint32, the only type llama.cpp reads it as`);
    else if (id < 0 || id >= n) problems.push(`${key} = ${id} is outside the ${n}-token vocabulary`);
  }

  const scan = header.tokens;
  if (!scan) return;
  if (scan.invalidUtf8 !== null) problems.push(`token ${scan.invalidUtf8} is not valid UTF-8`);
  if (scan.duplicate) {
    const shown = JSON.stringify(Buffer.from(scan.duplicate.text, "latin1").toString("utf8").slice(0, 40));
    problems.push(`tokens ${scan.duplicate.first} and ${scan.duplicate.second} are both ${shown} to llama.cpp, which aborts on a repeated token`);
  }
  // The newline token llama.cpp looks up by text; a miss throws std::out_of_range (or fails an assert) where
  // nothing catches it, which takes the whole process down.
  if (model === "llama") {
    if (!scan.has("<0x0A>") && !scan.hasBytes("\n")) {
      problems.push("the SentencePiece vocabulary has no <0x0A> (newline) byte token, which llama.cpp's tokenizer looks up and aborts without");
    }
    const missing: string[] = [];
    for (let b = 0; b < 256; b++) if (!scan.has(`<0x${hex2(b)}>`) && !scan.hasBytes(String.fromCharCode(b))) missing.push(`<0x${hex2(b)}>`);
    if (missing.length > 0) {
      warnings.push(
        `${missing.length} byte tokens are missing (${missing.slice(0, 4).join(", ")}${missing.length > 4 ? ", ..." : ""}): text needing them can crash llama.cpp`,
      );
    }
  } else if (model === "gpt2") {
    if (!scan.has("\u010a")) problems.push('the byte-level BPE vocabulary has no "Ċ" (newline) token, which llama.cpp looks up');
  } else if (model === "rwkv") {
    if (!scan.hasBytes("\n") && !scan.has("\\n") && !scan.has("\\x0a")) problems.push("the RWKV vocabulary has no newline token, which llama.cpp asserts on");
  }
}
