/**
 * What an engine can do beyond plain text generation, as data. The API derives the features a request asks for
 * (requestedFeatures) and checks them against the serving engine's capabilities in one place (checkCapabilities),
 * so a feature is added by implementing it in the engines that can, flipping their flag, and nothing else.
 */
export const CAPABILITIES = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
  embeddings: "/v1/embeddings",
  rerank: "/v1/rerank",
  tokenIds: "the prompt's and the answer's token ids (`return_token_ids`)",
  tools: "tool and function calling (`tools`, `tool_choice`, tool messages)",
  jsonObject: "JSON mode (`response_format` json_object)",
  jsonSchema: "structured output (`response_format` json_schema)",
  logprobs: "token log probabilities (`logprobs`, `top_logprobs`)",
  multipleChoices: "several choices per request (`n`, `best_of` > 1)",
  logitBias: "`logit_bias`",
  images: "image inputs (`image_url` content parts)",
  audio: "audio inputs and outputs (`input_audio`, `audio`, `modalities`)",
  files: "file inputs (`file` content parts)",
  suffix: "fill-in-the-middle (`suffix`)",
  reasoning: "reasoning control (`reasoning_effort`)",
  prediction: "predicted outputs (`prediction`)",
  embeddingDimensions: "shortened embeddings (`dimensions`)",
} as const;

export type Capability = keyof typeof CAPABILITIES;

export type Capabilities = Readonly<Record<Capability, boolean>>;

/** Capabilities from the ones an engine has; everything else is false, so a new capability starts off everywhere. */
export function capabilities(...have: Capability[]): Capabilities {
  const all = Object.fromEntries(Object.keys(CAPABILITIES).map((c) => [c, false])) as Record<Capability, boolean>;
  for (const c of have) all[c] = true;
  return all;
}

/** One feature a request uses, and the parameter that asked for it (named in the 400 when the engine lacks it). */
export interface RequestedFeature {
  capability: Capability;
  param: string;
}
