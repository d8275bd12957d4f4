import { z } from "zod";
import { InvalidRequestError, UnsupportedParameterError } from "../../core/errors.js";
import type { CompletionRequest } from "../../core/types.js";
import { generationParamsShape, toGenerationOptions } from "./generationParams.js";
import { assertTranslated, completionFeatures } from "./requestedFeatures.js";

export const completionBodySchema = z.object({
  ...generationParamsShape,
  prompt: z.union([z.string(), z.array(z.string()).min(1, "must contain at least one prompt").max(64)]),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().min(1).nullable().optional(),
  /** The legacy form: how many alternatives per token (OpenAI allows 0–5); 0 gives the chosen tokens' alone. */
  logprobs: z.number().int().min(0).max(5).nullable().optional(),
  /** tabagent: llama-server's `timings` object on the answer (or the stream's final chunk); on for all with config `timings`. */
  timings: z.boolean().nullable().optional(),
});
export type CompletionBody = z.infer<typeof completionBodySchema>;

/** One internal request per prompt (an array prompt gives one choice per entry, as OpenAI does). */
export function toCompletionRequests(body: CompletionBody): CompletionRequest[] {
  assertTranslated(completionFeatures(body));
  if (body.top_logprobs != null) throw new UnsupportedParameterError("top_logprobs", "applies to /v1/chat/completions; completions take 'logprobs' as a count");
  // best_of would generate candidates and return the best n; without that ranking only best_of = n means the same.
  const n = body.n ?? 1;
  if (body.best_of != null && body.best_of !== 1 && body.best_of !== n) {
    throw new InvalidRequestError(`'best_of' is ${body.best_of}; this server returns every choice it generates, so it may only be 1 or equal to 'n' (${n}).`, {
      param: "best_of",
      code: "invalid_value",
    });
  }
  const logprobs = body.logprobs ?? null;
  if (logprobs !== null && body.echo === true) {
    throw new UnsupportedParameterError("echo", "cannot be combined with 'logprobs' (the prompt's logprobs are not computed)");
  }
  const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
  const options = { ...toGenerationOptions(body), logprobs };
  return prompts.map((prompt) => ({ model: body.model, prompt, echo: body.echo ?? false, ...options }));
}
