export interface TokenSampling {
  /** 0 (or less) = greedy: the most likely token, ties to the lowest id. */
  temperature: number;
  /** Nucleus sampling: the smallest set of most likely tokens whose probability reaches this; undefined = 1. */
  topP?: number | undefined;
  presencePenalty?: number;
  frequencyPenalty?: number;
}

/**
 * Picks the next token from one row of logits. `counts` (token → times generated so far) feeds OpenAI's presence and
 * frequency penalties: `logit -= presence · [count > 0] + frequency · count`. The logits are not modified.
 */
export function sampleToken(logits: ArrayLike<number>, sampling: TokenSampling, random: () => number, counts?: ReadonlyMap<number, number>): number {
  const presence = sampling.presencePenalty ?? 0;
  const frequency = sampling.frequencyPenalty ?? 0;
  const penalized = counts !== undefined && counts.size > 0 && (presence !== 0 || frequency !== 0);
  const n = logits.length;
  if (n === 0) throw new Error("sampleToken: empty logits");
  let row: ArrayLike<number> = logits;
  if (penalized) {
    const copy = Float32Array.from(logits);
    for (const [token, count] of counts) {
      if (token >= 0 && token < n && count > 0) copy[token] = copy[token]! - presence - frequency * count;
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
  const topP = sampling.topP ?? 1;
  if (topP >= 1) return pick(probs, null, sum, random());
  const nucleus = nucleusOf(probs, sum, Math.max(topP, 0));
  let kept = 0;
  for (const i of nucleus) kept += probs[i]!;
  return pick(probs, nucleus, kept, random());
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
