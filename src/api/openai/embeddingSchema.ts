import { z } from "zod";
import { assertTranslated, embeddingFeatures } from "./requestedFeatures.js";
import type { EmbedRequest } from "../../core/types.js";

export const embeddingBodySchema = z.object({
  model: z.string().min(1, "must be a model id"),
  input: z.union([z.string().min(1, "must not be empty"), z.array(z.string().min(1, "must not be empty")).min(1, "must contain at least one input").max(2048)]),
  encoding_format: z.enum(["float", "base64"]).nullable().optional(),
  dimensions: z.number().int().min(1).nullable().optional(),
  user: z.unknown().optional(),
});
export type EmbeddingBody = z.infer<typeof embeddingBodySchema>;

export function toEmbedRequest(body: EmbeddingBody): EmbedRequest {
  assertTranslated(embeddingFeatures(body));
  return { model: body.model, input: typeof body.input === "string" ? [body.input] : body.input };
}
