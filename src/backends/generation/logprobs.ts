/**
 * Token logprobs as every engine reports them: the log-softmax of the model's logits for the position, before any
 * sampler touches them (temperature 1, no penalty, no top-k / top-p / min-p cut, no grammar), which is also what
 * llama-server returns with `post_sampling_probs` off. The chosen token's, and the `k` most likely (ties: lower id).
 */
export interface StepLogprobs {
  logprob: number;
  top: { id: number; logprob: number }[];
}

/** The k largest entries of `values` (k small), most likely first, ties to the lower id. */
function topK(n: number, value: (i: number) => number, k: number): number[] {
  const ids: number[] = [];
  if (k <= 0) return ids;
  for (let i = 0; i < n; i++) {
    const v = value(i);
    if (ids.length === k && !(v > value(ids[k - 1]!))) continue;
    let at = ids.length === k ? k - 1 : ids.length;
    while (at > 0 && v > value(ids[at - 1]!)) at--;
    ids.splice(at, 0, i);
    if (ids.length > k) ids.pop();
  }
  return ids;
}

/** From one row of raw logits (ONNX). */
export function logprobsFromLogits(logits: ArrayLike<number>, token: number, k: number): StepLogprobs {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i]! - max);
  const norm = max + Math.log(sum);
  const lp = (i: number) => logits[i]! - norm;
  return { logprob: lp(token), top: topK(n, (i) => logits[i]!, k).map((id) => ({ id, logprob: lp(id) })) };
}

/**
 * From a sampler's output distribution (node-llama-cpp's `probabilities`), when the only sampler that changed the
 * logits is the temperature: p ∝ exp(logit / T), so T · ln p is the logit up to a constant, and a log-softmax of
 * those gives the logprobs at temperature 1. T = 0 (greedy) and T = 1 leave the logits as they are.
 */
export function logprobsFromProbabilities(probabilities: ReadonlyMap<number, number>, token: number, k: number, temperature: number): StepLogprobs {
  const t = temperature > 0 ? temperature : 1;
  const ids = new Int32Array(probabilities.size);
  const values = new Float64Array(probabilities.size);
  let max = -Infinity;
  let n = 0;
  let chosen = -1;
  for (const [id, p] of probabilities) {
    const v = p > 0 ? t * Math.log(p) : -Infinity;
    if (id === token) chosen = n;
    ids[n] = id;
    values[n++] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(values[i]! - max);
  const norm = max + Math.log(sum);
  return {
    logprob: chosen >= 0 ? values[chosen]! - norm : -Infinity,
    top: topK(n, (i) => values[i]!, k).map((i) => ({ id: ids[i]!, logprob: values[i]! - norm })),
  };
}
