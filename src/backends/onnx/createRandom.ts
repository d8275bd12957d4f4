/**
 * A seeded source of uniform numbers in [0, 1) (SplitMix32-style, 32-bit state): the same seed gives the same
 * sequence, so a request with `seed` samples the same tokens every time. Without a seed the state is random.
 */
export function createRandom(seed?: number): () => number {
  let state = (seed === undefined ? Math.floor(Math.random() * 0x1_0000_0000) : hashSeed(seed)) >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 0x1_0000_0000;
  };
}

/** Any integer seed (OpenAI allows 64-bit values; JSON gives doubles) folded to 32 bits. */
function hashSeed(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return (lo ^ Math.imul(hi, 0x27d4eb2d)) >>> 0;
}
