import { createHash, timingSafeEqual as nodeTimingSafeEqual } from "node:crypto";

export interface KeyMatcherOptions {
  /** The comparison; tests inject a spy. Default: `crypto.timingSafeEqual`. */
  timingSafeEqual?: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => boolean;
}

const sha256 = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

/**
 * A constant-time test of a presented key against every configured key. Both sides are SHA-256 digests, so every
 * comparison is between 32-byte values whatever the key lengths (timingSafeEqual needs equal lengths, and comparing
 * raw keys would leak their lengths). Every configured key is compared, without an early exit, so the time does not
 * depend on which key matched. The keys' digests are computed once, here.
 */
export function createKeyMatcher(keys: readonly string[], { timingSafeEqual = nodeTimingSafeEqual }: KeyMatcherOptions = {}): (presented: string) => boolean {
  const digests = keys.map(sha256);
  return (presented) => {
    const digest = sha256(presented);
    let matched = false;
    for (const known of digests) {
      // Non-short-circuiting: the comparison runs for every key.
      matched = timingSafeEqual(digest, known) || matched;
    }
    return matched;
  };
}
