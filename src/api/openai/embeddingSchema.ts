import { z } from "zod";
import { assertTranslated, embeddingFeatures } from "./requestedFeatures.js";
import type { EmbedRequest } from "../../core/types.js";

const tokenId = z.number().int("must be a token id (an integer)").min(0, "must be a token id (0 or more)");
const tokenIds = z.array(tokenId).min(1, "must contain at least one token id");

export const embeddingBodySchema = z.object({
  model: z.string().min(1, "must be a model id"),
  /** A string, strings, one input of token ids (`[1, 2, 3]`) or several (`[[1, 2], [3]]`), as OpenAI accepts. */
  input: z.union([
    z.string().min(1, "must not be empty"),
    z.array(z.string().min(1, "must not be empty")).min(1, "must contain at least one input").max(2048),
    tokenIds.max(1_000_000),
    z.array(tokenIds).min(1, "must contain at least one input").max(2048),
  ]),
  encoding_format: z.enum(["float", "base64"]).nullable().optional(),
  dimensions: z.number().int().min(1).nullable().optional(),
  user: z.unknown().optional(),
});
export type EmbeddingBody = z.infer<typeof embeddingBodySchema>;

export function toEmbedRequest(body: EmbeddingBody): EmbedRequest {
  assertTranslated(embeddingFeatures(body));
  const input = body.input;
  if (typeof input === "string") return { model: body.model, input: [input] };
  // One flat array of ids is one input; each id's range is checked by the engine, which knows the vocabulary.
  if (isIds(input)) return { model: body.model, input: [input], flatTokenInput: true };
  return { model: body.model, input };
}

function isIds(input: readonly unknown[]): input is number[] {
  return input.every((x) => typeof x === "number");
}
