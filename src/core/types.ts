/**
 * Internal request/response types. The OpenAI layer translates wire bodies into these and back;
 * backends only ever see validated internal requests. Fields for tools, structured output, logprobs and
 * n > 1 exist already so later features extend these types instead of replacing them.
 */
import type { DetectedTask, Detection, EngineName } from "./detectionSchema.js";

export type ModelTask = DetectedTask;

/** A served model: its id, where it lives, and what detection found (format, task, engine and why). */
export interface ModelDescriptor {
  id: string;
  /** The file an in-process engine opens (a GGUF's first file), or the model's folder. */
  path: string;
  task: ModelTask;
  /** The engine that serves it (detection's choice or the model's config); null when nothing may. */
  engine: EngineName | null;
  detection: Detection;
  sizeBytes: number;
  /** Unix seconds, from the file's mtime. */
  created: number;
  /** Set for a model that lives on an upstream server: which one, and its id there. */
  upstream?: { name: string; model: string };
  /** Engine settings from the model's config entry. */
  engineOptions?: {
    llamaServerPath?: string;
    args?: string[];
    /** transformers engine */
    device?: string;
    dtype?: string;
    trustRemoteCode?: boolean;
  };
  /**
   * Why the model's chat template cannot be used (it hung, ran out of memory or did not compile when an engine
   * tried it). Kept across unloads (the file is the same); chat requests are refused with it, completions work.
   */
  chatTemplateProblem?: string;
}

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface ChatMessage {
  role: ChatRole;
  content: string;
  name?: string;
  toolCalls?: ToolCall[];
  toolCallId?: string;
}

export interface SamplingParams {
  /** Upper bound on generated tokens; undefined = until the context is full. */
  maxTokens: number | undefined;
  temperature: number;
  topP: number | undefined;
  /**
   * The API always sets one (a fresh random seed when the request gives none), so every engine samples from an
   * explicit seed; undefined only for internal callers, where the engine picks a random one.
   */
  seed: number | undefined;
  presencePenalty: number;
  frequencyPenalty: number;
  stop: string[];
  /** llama.cpp / vLLM sampler extensions; undefined (or 0 for topK and minP, 1 for repeatPenalty) = off. */
  topK?: number | undefined;
  /** Keep tokens whose probability is at least minP times the most likely token's. */
  minP?: number | undefined;
  /** llama.cpp's `repeat_penalty` (vLLM's `repetition_penalty`) over the last REPEAT_PENALTY_WINDOW tokens. */
  repeatPenalty?: number | undefined;
}

/**
 * The tokens `repeatPenalty` looks back over: the last 64 of the prompt and the answer together (llama.cpp's
 * `repeat_last_n` default). Each token in the window counts once: a positive logit is divided by the penalty, a
 * negative one multiplied.
 */
export const REPEAT_PENALTY_WINDOW = 64;

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; name: string; schema: Record<string, unknown>; strict: boolean };

/** A function the model may call: its JSON Schema parameters, and whether the call must match them exactly. */
export interface ToolDefinition {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
  strict: boolean;
}

export type ToolChoice = { type: "none" } | { type: "auto" } | { type: "required" } | { type: "function"; name: string };

export interface GenerationOptions {
  sampling: SamplingParams;
  /**
   * Top-level request fields this server does not know, as the client sent them. Upstream servers get them (another
   * server's own extensions reach it untouched); local engines ignore them, as OpenAI ignores unknown fields.
   */
  extraFields?: Record<string, unknown>;
  /** Number of choices (1–16); choice i samples with seed + i. */
  n: number;
  responseFormat: ResponseFormat;
  /**
   * Logprobs of each generated token, with this many most likely alternatives (0–20); null = logprobs off. The
   * values are the log-softmax of the model's logits before any sampler (temperature 1, no penalty or cut-off).
   */
  logprobs: number | null;
  /** Also return the prompt's and the answer's token ids (vLLM's `return_token_ids` extension). */
  returnTokenIds: boolean;
}

export interface ChatRequest extends GenerationOptions {
  model: string;
  messages: ChatMessage[];
  tools: ToolDefinition[];
  toolChoice: ToolChoice;
  /** Whether the model may call several tools in one turn (OpenAI's default: true). */
  parallelToolCalls: boolean;
}

export interface CompletionRequest extends GenerationOptions {
  model: string;
  prompt: string;
  echo: boolean;
}

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** A token and its log probability; `bytes` are its UTF-8 bytes (null when it has no text). */
export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

/** One generated token's logprob and the most likely tokens at its position, most likely first. */
export interface LogprobEntry extends TokenLogprob {
  top: TokenLogprob[];
}

/** What a backend streams. Non-streaming responses are these chunks folded together. */
export type GenerationChunk =
  | { type: "text"; index: number; text: string }
  /** Only when `returnTokenIds` is set: ids as the engine produced them (`prompt` once, first). */
  | { type: "token_ids"; index: number; ids: number[]; prompt?: boolean }
  /**
   * A tool call starts (`callIndex` numbers the calls of a choice): its id and function name, and the arguments
   * known so far (often ""); `tool_call_arguments` chunks append to them.
   */
  | { type: "tool_call"; index: number; callIndex: number; id: string; name: string; arguments: string }
  | { type: "tool_call_arguments"; index: number; callIndex: number; arguments: string }
  | { type: "finish"; index: number; reason: FinishReason }
  /** Only when `logprobs` is set: the tokens of the text that follows (sent before it), in order. */
  | { type: "logprobs"; index: number; entries: LogprobEntry[] }
  | { type: "usage"; usage: Usage };

/** One embedding input: a text, or token ids in the model's vocabulary (embedded as they are). */
export type EmbedInput = string | number[];

export interface EmbedRequest {
  model: string;
  input: EmbedInput[];
  /** The wire input was one flat array of token ids (`[1, 2, 3]`): one input, whose bad id is `input[j]`. */
  flatTokenInput?: boolean;
}

export interface EmbedResult {
  vectors: number[][];
  promptTokens: number;
}
