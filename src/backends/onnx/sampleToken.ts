export interface TokenSampling {
  /** 0 (or less) = greedy: the most likely token, ties to the lowest id. */
  temperature: number;
  /** Nucleus sampling: the smallest set of most likely tokens whose probability reaches this; undefined = 1. */
  topP?: number | undefined;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Keep only the k most likely tokens (ties: lower id first); 0 or undefined = off. */
  topK?: number | undefined;
  /** Keep tokens at least this fraction as likely as the most likely one; 0 or undefined = off. */
  minP?: number | undefined;
  /** llama.cpp's repeat penalty over the tokens in `recent`; 1 or undefined = off. */
  repeatPenalty?: number | undefined;
}

/**
 * Picks the next token from one row of logits. `counts` (token → times generated so far) feeds OpenAI's presence and
 * frequency penalties: `logit -= presence · [count > 0] + frequency · count`. `recent` (the distinct tokens of the
 * repeat-penalty window) feeds llama.cpp's repeat penalty, first: a positive logit is divided by it, a negative one
 * multiplied. Then temperature, top_k, top_p and min_p, in transformers' order. The logits are not modified.
 */
export function sampleToken(
  logits: ArrayLike<number>,
  sampling: TokenSampling,
  random: () => number,
  counts?: ReadonlyMap<number, number>,
  recent?: ReadonlySet<number>,
): number {
  const presence = sampling.presencePenalty ?? 0;
  const frequency = sampling.frequencyPenalty ?? 0;
  const repeat = sampling.repeatPenalty ?? 1;
  const penalized = counts !== undefined && counts.size > 0 && (presence !== 0 || frequency !== 0);
  const repeated = recent !== undefined && recent.size > 0 && repeat !== 1;
  const n = logits.length;
  if (n === 0) throw new Error("sampleToken: empty logits");
  let row: ArrayLike<number> = logits;
  if (penalized || repeated) {
    const copy = Float32Array.from(logits);
    if (repeated) {
      for (const token of recent) {
        if (token >= 0 && token < n) copy[token] = copy[token]! > 0 ? copy[token]! / repeat : copy[token]! * repeat;
      }
    }
    if (penalized) {
      for (const [token, count] of counts) {
        if (token >= 0 && token < n && count > 0) copy[token] = copy[token]! - presence - frequency * count;
      }
    }
    row = copy;
  }
  if (!(sampling.temperature > 0)) return argmax(row);

  const max = row[argmax(row)]!;
  const probs = new Float32Array(n);
  const invT = 1 / sampling.temperature;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.exp((row[i]! - max) * invT);
    probs[i] = p;
    sum += p;
  }
  const topK = sampling.topK ?? 0;
  if (topK > 0 && topK < n) sum = keepTopK(probs, topK);
  // The most likely token has probability exp(0) = 1 here (before normalizing), so min_p's cut is minP itself.
  const minP = sampling.minP ?? 0;
  const topP = sampling.topP ?? 1;
  if (topP >= 1) {
    if (minP > 0) sum = dropBelow(probs, minP);
    return pick(probs, null, sum, random());
  }
  let nucleus = nucleusOf(probs, sum, Math.max(topP, 0));
  if (minP > 0) nucleus = nucleus.filter((i) => probs[i]! >= minP);
  let kept = 0;
  for (const i of nucleus) kept += probs[i]!;
  return pick(probs, nucleus, kept, random());
}

/** Zeroes all but the k largest entries (ties at the cut: lower ids kept); returns the remaining sum. */
function keepTopK(probs: Float32Array, k: number): number {
  const sorted = Float32Array.from(probs).sort();
  const cut = sorted[probs.length - k]!;
  let above = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! > cut) above++;
  let tiesLeft = k - above;
  let sum = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p > cut || (p === cut && tiesLeft-- > 0)) sum += p;
    else probs[i] = 0;
  }
  return sum;
}

/** Zeroes the entries below `cut`; returns the remaining sum. */
function dropBelow(probs: Float32Array, cut: number): number {
  let sum = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! < cut) probs[i] = 0;
    else sum += probs[i]!;
  }
  return sum;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  let bestValue = row[0]!;
  for (let i = 1; i < row.length; i++) {
    const v = row[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** The draw `u` in [0, 1) walks the (sub)distribution's cumulative mass. */
function pick(probs: Float32Array, candidates: Uint32Array | null, total: number, u: number): number {
  const target = u * total;
  let acc = 0;
  if (candidates === null) {
    let last = 0;
    for (let i = 0; i < probs.length; i++) {
      const p = probs[i]!;
      if (p <= 0) continue;
      acc += p;
      last = i;
      if (acc > target) return i;
    }
    return last; // rounding left the draw past the end
  }
  for (const i of candidates) {
    acc += probs[i]!;
    if (acc > target) return i;
  }
  return candidates[candidates.length - 1]!;
}

/**
 * The nucleus, most likely first (ties: lower id first). Only tokens above a threshold are sorted: the threshold
 * halves until the tokens above it hold `topP` of the mass, so a 150k vocabulary sorts a few dozen entries, and
 * the result is exact (every token left out is less likely than every token kept).
 */
function nucleusOf(probs: Float32Array, sum: number, topP: number): Uint32Array {
  const need = topP * sum;
  let maxP = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! > maxP) maxP = probs[i]!;
  let threshold = maxP / 64;
  for (;;) {
    const idx: number[] = [];
    let mass = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i]! >= threshold) {
        idx.push(i);
        mass += probs[i]!;
      }
    }
    if (mass >= need || threshold === 0) {
      idx.sort((a, b) => probs[b]! - probs[a]! || a - b);
      let acc = 0;
      let k = 0;
      while (k < idx.length) {
        acc += probs[idx[k]!]!;
        k++;
        if (acc >= need) break;
      }
      return Uint32Array.from(idx.slice(0, Math.max(k, 1)));
    }
    threshold = threshold < 1e-30 ? 0 : threshold / 64;
  }
}
