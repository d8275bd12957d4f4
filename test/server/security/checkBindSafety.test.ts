import { describe, expect, it } from "vitest";
import { checkBindSafety } from "../../../src/server/security/checkBindSafety.js";

const KEY = "sk-tabagent-aaaaaaaaaaaaaaaaaaaa";

describe("checkBindSafety", () => {
  it("loopback binds are fine without a key", () => {
    for (const host of ["127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LocalHost", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      expect(checkBindSafety({ host, apiKeys: [], insecureNoAuth: false }), host).toEqual({ ok: true });
    }
  });

  it("anything else without a key refuses to start, saying how to fix it", () => {
    for (const host of ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "::ffff:10.0.0.1", "myhost.lan", "128.0.0.1", "localhost.example"]) {
      const decision = checkBindSafety({ host, apiKeys: [], insecureNoAuth: false });
      expect(decision.ok, host).toBe(false);
      if (!decision.ok) {
        expect(decision.message).toContain(host);
        expect(decision.message).toContain("--api-key");
        expect(decision.message).toContain("--insecure-no-auth");
      }
    }
  });

  it("a key makes any bind fine, without a warning", () => {
    expect(checkBindSafety({ host: "0.0.0.0", apiKeys: [KEY], insecureNoAuth: false })).toEqual({ ok: true });
    expect(checkBindSafety({ host: "::", apiKeys: [KEY], insecureNoAuth: true })).toEqual({ ok: true });
  });

  it("--insecure-no-auth starts an open non-loopback bind, with a warning", () => {
    const decision = checkBindSafety({ host: "0.0.0.0", apiKeys: [], insecureNoAuth: true });
    expect(decision.ok).toBe(true);
    expect(decision.ok && decision.warning).toMatch(/0\.0\.0\.0 without an API key/);
    // On loopback the flag changes nothing and warns about nothing.
    expect(checkBindSafety({ host: "127.0.0.1", apiKeys: [], insecureNoAuth: true })).toEqual({ ok: true });
  });
});
