export type PoolingMode = "mean" | "cls" | "max" | "lasttoken" | "mean_sqrt_len" | "weightedmean";

/**
 * One vector per input from token vectors, as sentence-transformers' Pooling module computes it. `hidden` is
 * [batch, seq, dim] row-major; `mask[b][t]` is 1 for real tokens, 0 for padding (right padded).
 */
export function poolTokens(hidden: Float32Array, dims: readonly [number, number, number], mask: readonly (readonly number[])[], mode: PoolingMode): Float32Array[] {
  const [batch, seq, dim] = dims;
  const out: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const v = new Float32Array(dim);
    const base = b * seq * dim;
    const m = mask[b]!;
    const real = m.reduce((s, x) => s + (x ? 1 : 0), 0);
    if (mode === "cls") {
      v.set(hidden.subarray(base, base + dim));
    } else if (mode === "lasttoken") {
      let last = 0;
      for (let t = 0; t < seq; t++) if (m[t]) last = t;
      v.set(hidden.subarray(base + last * dim, base + (last + 1) * dim));
    } else if (mode === "max") {
      v.fill(-Infinity);
      for (let t = 0; t < seq; t++) {
        if (!m[t]) continue;
        for (let d = 0; d < dim; d++) v[d] = Math.max(v[d]!, hidden[base + t * dim + d]!);
      }
    } else {
      // mean, mean_sqrt_len and weightedmean (weights 1..n by position) share one accumulation, in float64.
      const acc = new Float64Array(dim);
      let weightSum = 0;
      for (let t = 0; t < seq; t++) {
        if (!m[t]) continue;
        const w = mode === "weightedmean" ? t + 1 : 1;
        weightSum += w;
        for (let d = 0; d < dim; d++) acc[d]! += w * hidden[base + t * dim + d]!;
      }
      const div = mode === "mean_sqrt_len" ? Math.sqrt(Math.max(real, 1)) : Math.max(weightSum, 1e-9);
      for (let d = 0; d < dim; d++) v[d] = acc[d]! / div;
    }
    out.push(v);
  }
  return out;
}

/** Unit length (a zero vector stays zero). */
export function l2Normalize(v: ArrayLike<number>): number[] {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  const norm = Math.sqrt(sum);
  return Array.from(v, (x) => (norm > 0 ? x / norm : x));
}
