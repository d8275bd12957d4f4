import * as crypto from "node:crypto";

export interface KeyMatcherOptions {
  /** The comparison; tests inject a spy. Default: `crypto.timingSafeEqual`. */
  timingSafeEqual?: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => boolean;
}

const sha256 = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest();

/**
 * The digest of a presented key, written into `into` (32 bytes) rather than a new Buffer: this runs on every
 * authenticated request, and a Buffer made per call (each with its own backing store for the GC to sweep) costs more
 * than the hash. Node 20.12+ has the one-shot `crypto.hash`; older versions make the Buffer.
 */
const digestInto: (text: string, into: Buffer) => Buffer =
  typeof crypto.hash === "function"
    ? (text, into) => {
        into.write(crypto.hash("sha256", text, "base64"), "base64");
        return into;
      }
    : (text) => sha256(text);

/**
 * A constant-time test of a presented key against every configured key. Both sides are SHA-256 digests, so every
 * comparison is between 32-byte values whatever the key lengths (timingSafeEqual needs equal lengths, and comparing
 * raw keys would leak their lengths). Every configured key is compared, without an early exit, so the time does not
 * depend on which key matched. The keys' digests are computed once, here.
 */
export function createKeyMatcher(keys: readonly string[], { timingSafeEqual = crypto.timingSafeEqual }: KeyMatcherOptions = {}): (presented: string) => boolean {
  const digests = keys.map(sha256);
  // One request is checked at a time (the check is synchronous), so one scratch buffer serves them all.
  const scratch = Buffer.alloc(32);
  return (presented) => {
    const digest = digestInto(presented, scratch);
    let matched = false;
    for (const known of digests) {
      // Non-short-circuiting: the comparison runs for every key.
      matched = timingSafeEqual(digest, known) || matched;
    }
    return matched;
  };
}
