/**
 * The known key a mistyped one most likely meant: the same letters in another case or spelling (`Port`, `models_dir`,
 * `models-dir` → `port`, `modelsDirs`), else the closest by edit distance when it is close enough to be a typo.
 * Undefined when nothing is near.
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const wanted = plain(key);
  const same = known.find((k) => plain(k) === wanted);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(wanted, plain(k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  // One edit in four letters, at least one and at most three: `threds` → `threads`, but not `x` → `id`.
  const allowed = Math.min(3, Math.max(1, Math.floor(wanted.length / 4)));
  return bestDistance <= allowed ? best : undefined;
}

/** Levenshtein distance, with a swap of two neighbouring letters counted as one edit. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
