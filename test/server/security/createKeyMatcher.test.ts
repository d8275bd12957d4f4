import { timingSafeEqual } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { createKeyMatcher } from "../../../src/server/security/createKeyMatcher.js";

const KEYS = ["sk-tabagent-aaaaaaaaaaaaaaaaaaaa", "sk-tabagent-bbbbbbbbbbbbbbbbbbbb", "sk-tabagent-cccccccccccccccccccccccccccccc"];

describe("createKeyMatcher", () => {
  it("accepts each configured key and nothing else", () => {
    const matches = createKeyMatcher(KEYS);
    for (const key of KEYS) expect(matches(key)).toBe(true);
    for (const other of ["", "sk-tabagent-aaaaaaaaaaaaaaaaaaa", `${KEYS[0]}a`, KEYS[0]!.toUpperCase(), "x".repeat(10_000)]) expect(matches(other)).toBe(false);
    expect(createKeyMatcher([])("anything")).toBe(false);
  });

  it("compares 32-byte digests with timingSafeEqual against every key, whichever matches, with no early exit", () => {
    const spy = vi.fn(timingSafeEqual);
    const matches = createKeyMatcher(KEYS, { timingSafeEqual: spy });
    for (const presented of [KEYS[0]!, KEYS[1]!, KEYS[2]!, "sk-tabagent-not-configured-at-all", "short"]) {
      spy.mockClear();
      matches(presented);
      expect(spy, presented).toHaveBeenCalledTimes(KEYS.length);
      for (const [a, b] of spy.mock.calls) {
        expect(a.byteLength).toBe(32);
        expect(b.byteLength).toBe(32);
      }
    }
  });
});
