/**
 * Folds any integer seed (JSON allows up to 2^53, negative too) to the 32 bits llama.cpp samplers take; seeds that
 * differ below 2^32 stay distinct, except that 2^32 - 1 (and so -1), which llama.cpp reads as "pick a random seed",
 * becomes 2^32 - 2.
 */
export function seed32(seed: number): number {
  const folded = ((Math.trunc(seed) % 0x1_0000_0000) + 0x1_0000_0000) % 0x1_0000_0000;
  return folded === 0xffff_ffff ? 0xffff_fffe : folded;
}
