import { z } from "zod";
import type { CompletionRequest } from "../../core/types.js";
import { generationParamsShape, toGenerationOptions } from "./generationParams.js";
import { assertTranslated, completionFeatures } from "./requestedFeatures.js";

export const completionBodySchema = z.object({
  ...generationParamsShape,
  prompt: z.union([z.string(), z.array(z.string()).min(1, "must contain at least one prompt").max(64)]),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().min(1).nullable().optional(),
  logprobs: z.number().int().min(0).max(20).nullable().optional(),
});
export type CompletionBody = z.infer<typeof completionBodySchema>;

/** One internal request per prompt (an array prompt gives one choice per entry, as OpenAI does). */
export function toCompletionRequests(body: CompletionBody): CompletionRequest[] {
  assertTranslated(completionFeatures(body));
  const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
  const options = toGenerationOptions(body);
  return prompts.map((prompt) => ({ model: body.model, prompt, echo: body.echo ?? false, ...options }));
}
