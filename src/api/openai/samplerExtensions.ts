import { z } from "zod";
import { InvalidRequestError, UnsupportedParameterError } from "../../core/errors.js";

const nullable = <T extends z.ZodType>(t: T) => t.nullable().optional();

/**
 * Sampler parameters other servers added to the OpenAI API (llama.cpp's server, vLLM) that every engine here
 * honours. vLLM spells the repeat penalty `repetition_penalty`; both spellings are accepted.
 */
export const samplerExtensionsShape = {
  /** 0 = off. */
  top_k: nullable(z.number().int().min(0).max(1_000_000)),
  min_p: nullable(z.number().min(0).max(1)),
  repeat_penalty: nullable(z.number().gt(0).max(10)),
  repetition_penalty: nullable(z.number().gt(0).max(10)),
};

export interface WireSamplerExtensions {
  top_k?: number | null | undefined;
  min_p?: number | null | undefined;
  repeat_penalty?: number | null | undefined;
  repetition_penalty?: number | null | undefined;
}

/** The internal sampler fields; neutral values (top_k 0, min_p 0, repeat penalty 1) are left out. */
export function toSamplerExtensions(body: WireSamplerExtensions): { topK?: number; minP?: number; repeatPenalty?: number } {
  const { repeat_penalty: a, repetition_penalty: b } = body;
  if (a != null && b != null && a !== b) {
    throw new InvalidRequestError(`'repeat_penalty' (${a}) and 'repetition_penalty' (${b}) are the same parameter; send one, or the same value.`, {
      param: "repetition_penalty",
      code: "invalid_value",
    });
  }
  const penalty = a ?? b;
  return {
    ...(body.top_k ? { topK: body.top_k } : {}),
    ...(body.min_p ? { minP: body.min_p } : {}),
    ...(penalty != null && penalty !== 1 ? { repeatPenalty: penalty } : {}),
  };
}

const isNeutral =
  (...values: unknown[]) =>
  (v: unknown) =>
    values.includes(v);

/**
 * Extensions of other OpenAI-compatible servers that change what a request produces and that no engine here
 * implements: each is answered 400 `unsupported_parameter` naming it, never silently ignored. A value that asks for
 * nothing (`ignore_eos: false`, `mirostat: 0`, `typical_p: 1`, ...) is accepted. Fields that are pure metadata
 * (`user`, `metadata`, `store`, `service_tier`) and fields nobody here knows stay accepted (clients such as
 * LangChain send extras).
 */
interface RefusedExtension {
  /** Whose extension it is. */
  from: string;
  /** Whether a value asks for nothing (null and absent always do). */
  neutral: (v: unknown) => boolean;
  /** What to send here instead, where something does the same. */
  instead?: string;
}

export const REFUSED_EXTENSIONS = {
  grammar: { from: "llama.cpp", neutral: isNeutral(""), instead: "response_format json_schema" },
  json_schema: { from: "llama.cpp", neutral: isNeutral(), instead: "response_format json_schema" },
  guided_json: { from: "vLLM", neutral: isNeutral(), instead: "response_format json_schema" },
  guided_regex: { from: "vLLM", neutral: isNeutral("") },
  guided_choice: { from: "vLLM", neutral: (v) => Array.isArray(v) && v.length === 0 },
  guided_grammar: { from: "vLLM", neutral: isNeutral("") },
  guided_decoding_backend: { from: "vLLM", neutral: isNeutral() },
  structured_outputs: { from: "vLLM", neutral: isNeutral(), instead: "response_format json_schema" },
  chat_template_kwargs: { from: "vLLM / llama.cpp", neutral: (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0 },
  chat_template: { from: "vLLM", neutral: isNeutral(), instead: "the model's `chatTemplate` setting" },
  add_generation_prompt: { from: "vLLM", neutral: isNeutral(true) },
  continue_final_message: { from: "vLLM", neutral: isNeutral(false) },
  ignore_eos: { from: "llama.cpp / vLLM", neutral: isNeutral(false) },
  cache_prompt: { from: "llama.cpp", neutral: isNeutral(true) },
  n_predict: { from: "llama.cpp", neutral: isNeutral(), instead: "max_tokens" },
  n_keep: { from: "llama.cpp", neutral: isNeutral(0) },
  mirostat: { from: "llama.cpp", neutral: isNeutral(0) },
  mirostat_tau: { from: "llama.cpp", neutral: isNeutral() },
  mirostat_eta: { from: "llama.cpp", neutral: isNeutral() },
  typical_p: { from: "llama.cpp / vLLM", neutral: isNeutral(1) },
  tfs_z: { from: "llama.cpp", neutral: isNeutral(1) },
  top_n_sigma: { from: "llama.cpp", neutral: isNeutral(-1) },
  xtc_probability: { from: "llama.cpp", neutral: isNeutral(0) },
  xtc_threshold: { from: "llama.cpp", neutral: isNeutral() },
  dynatemp_range: { from: "llama.cpp", neutral: isNeutral(0) },
  dynatemp_exponent: { from: "llama.cpp", neutral: isNeutral(1) },
  repeat_last_n: { from: "llama.cpp", neutral: isNeutral(64) },
  penalize_nl: { from: "llama.cpp", neutral: isNeutral(false) },
  dry_multiplier: { from: "llama.cpp", neutral: isNeutral(0) },
  dry_base: { from: "llama.cpp", neutral: isNeutral() },
  dry_allowed_length: { from: "llama.cpp", neutral: isNeutral() },
  dry_penalty_last_n: { from: "llama.cpp", neutral: isNeutral() },
  dry_sequence_breakers: { from: "llama.cpp", neutral: isNeutral() },
  n_probs: { from: "llama.cpp", neutral: isNeutral(0), instead: "logprobs / top_logprobs" },
  samplers: { from: "llama.cpp", neutral: isNeutral() },
  id_slot: { from: "llama.cpp", neutral: isNeutral(-1) },
  lora: { from: "llama.cpp", neutral: (v) => Array.isArray(v) && v.length === 0 },
  min_tokens: { from: "vLLM", neutral: isNeutral(0) },
  stop_token_ids: { from: "vLLM", neutral: (v) => Array.isArray(v) && v.length === 0 },
  bad_words: { from: "vLLM", neutral: (v) => Array.isArray(v) && v.length === 0 },
  skip_special_tokens: { from: "vLLM", neutral: isNeutral(true) },
  spaces_between_special_tokens: { from: "vLLM", neutral: isNeutral(true) },
  include_stop_str_in_output: { from: "vLLM", neutral: isNeutral(false) },
  length_penalty: { from: "vLLM", neutral: isNeutral(1) },
  use_beam_search: { from: "vLLM", neutral: isNeutral(false) },
  truncate_prompt_tokens: { from: "vLLM", neutral: isNeutral() },
  prompt_logprobs: { from: "vLLM", neutral: isNeutral(0) },
  allowed_token_ids: { from: "vLLM", neutral: isNeutral() },
  logits_processors: { from: "vLLM", neutral: (v) => Array.isArray(v) && v.length === 0 },
  keep_alive: { from: "Ollama", neutral: isNeutral() },
  options: { from: "Ollama", neutral: (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0 },
} satisfies Record<string, RefusedExtension>;

type RefusedName = keyof typeof REFUSED_EXTENSIONS;

/** The refused extensions as schema fields, so a parsed body keeps them (and unknown-field logging skips them). */
export const refusedExtensionsShape = Object.fromEntries(Object.keys(REFUSED_EXTENSIONS).map((k) => [k, z.unknown().optional()])) as {
  [K in RefusedName]: z.ZodOptional<z.ZodUnknown>;
};

/** A 400 `unsupported_parameter` for the first refused extension the body sets to something other than neutral. */
export function refuseExtensions(body: object): void {
  for (const [name, value] of Object.entries(body)) {
    if (value == null || !Object.hasOwn(REFUSED_EXTENSIONS, name)) continue;
    const ext: RefusedExtension = REFUSED_EXTENSIONS[name as RefusedName];
    if (ext.neutral(value)) continue;
    const instead = ext.instead ? `; use ${ext.instead}` : "";
    throw new UnsupportedParameterError(name, `(a ${ext.from} extension) is not supported by this server${instead}`);
  }
}
