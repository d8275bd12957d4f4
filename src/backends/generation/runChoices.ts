import type { GenerationChunk, GenerationOptions } from "../../core/types.js";

/** The request for choice `i` of `request.n`: one choice, sampled with seed + i (so each choice has its own stream). */
export function choiceRequest<R extends GenerationOptions>(request: R, i: number): R {
  const seed = request.sampling.seed;
  return { ...request, n: 1, sampling: { ...request.sampling, seed: seed === undefined ? undefined : seed + i } };
}

/**
 * `request.n` choices, all running at once (an engine that batches sequences evaluates them together), merged into
 * one stream: choice i's chunks carry index i and keep their order; the usage comes once, at the end, with the
 * prompt counted once and the choices' completion tokens summed. With n = 1 the request runs as it is.
 *
 * A choice that fails ends the others (their signal aborts) and the error is thrown; so is leaving the stream early.
 */
export async function* runChoices<R extends GenerationOptions>(
  request: R,
  signal: AbortSignal,
  run: (choice: R, signal: AbortSignal) => AsyncIterable<GenerationChunk>,
): AsyncGenerator<GenerationChunk> {
  if (request.n <= 1) {
    yield* run(request, signal);
    return;
  }
  const stop = new AbortController();
  const choiceSignal = AbortSignal.any([signal, stop.signal]);
  const iterators = Array.from({ length: request.n }, (_, i) => run(choiceRequest(request, i), choiceSignal)[Symbol.asyncIterator]());
  type Step = { i: number; result: IteratorResult<GenerationChunk> };
  const pending = new Map<number, Promise<Step>>();
  const pull = (i: number) =>
    pending.set(
      i,
      iterators[i]!.next().then((result) => ({ i, result })),
    );
  iterators.forEach((_, i) => pull(i));
  let promptTokens = 0;
  let completionTokens = 0;
  let sawUsage = false;
  try {
    while (pending.size > 0) {
      const { i, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(i);
        continue;
      }
      pull(i);
      const chunk = result.value;
      if (chunk.type === "usage") {
        sawUsage = true;
        promptTokens = Math.max(promptTokens, chunk.usage.promptTokens);
        completionTokens += chunk.usage.completionTokens;
        continue;
      }
      yield { ...chunk, index: i };
    }
  } finally {
    if (pending.size > 0) {
      stop.abort(signal.aborted ? signal.reason : new Error("the other choices ended"));
      // Each iterator still running is closed once its pending step settles (failures there are this one's echo).
      await Promise.allSettled([...pending.entries()].map(([i, step]) => step.then(() => iterators[i]!.return?.())));
    }
  }
  if (sawUsage) yield { type: "usage", usage: { promptTokens, completionTokens } };
}
