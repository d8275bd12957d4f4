import { describe, expect, it } from "vitest";
import { normalizeHostEntry, normalizeOrigin } from "../../../src/config/normalizeSecurityEntries.js";
import { createHostPolicy, isLoopbackHost, isWildcardHost } from "../../../src/server/security/createHostPolicy.js";
import { createOriginPolicy } from "../../../src/server/security/createOriginPolicy.js";

describe("host names", () => {
  it("normalizes allowed-host entries the way browsers write Host", () => {
    expect(normalizeHostEntry("TabAgent.LAN")).toBe("tabagent.lan");
    expect(normalizeHostEntry("tabagent.lan:8471")).toBe("tabagent.lan");
    expect(normalizeHostEntry("::1")).toBe("[::1]");
    expect(normalizeHostEntry("[0:0:0:0:0:0:0:1]")).toBe("[::1]");
    expect(normalizeHostEntry(" 10.0.0.5 ")).toBe("10.0.0.5");
    expect(normalizeHostEntry("*")).toBe("*");
    for (const bad of ["", "http://x", "a/b", "a b", "user@host", "[zz]"]) expect(normalizeHostEntry(bad), bad).toBeNull();
  });

  it("knows loopback and wildcard addresses", () => {
    for (const h of ["localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "localhost.evil", "::2", "::ffff:10.0.0.1", "1.127.0.0"]) expect(isLoopbackHost(h), h).toBe(false);
    for (const h of ["0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0"]) expect(isWildcardHost(h), h).toBe(true);
    for (const h of ["127.0.0.1", "::1", "localhost", "example.com"]) expect(isWildcardHost(h), h).toBe(false);
  });

  it("a policy matches Host header values, port or not", () => {
    const p = createHostPolicy("127.0.0.1", ["tabagent.lan"]);
    for (const h of ["localhost", "localhost:1", "127.0.0.1:8471", "127.0.0.5", "[::1]:8471", "TABAGENT.LAN:9"]) expect(p.allows(h), h).toBe(true);
    for (const h of [undefined, "", "evil.example", "[::1", "localhost.", "127.0.0.256", "127.0.0.1.evil", "tabagent.lan.evil"])
      expect(p.allows(h), String(h)).toBe(false);
    expect(p.allowsAll).toBe(false);
    expect(createHostPolicy("0.0.0.0", ["*"]).allows("anything")).toBe(true);
    expect(createHostPolicy("0.0.0.0", []).names).toEqual(["localhost", "127.0.0.1", "[::1]"]);
    expect(createHostPolicy("fe80::1", []).allows("[fe80::1]:8471")).toBe(true);
  });
});

describe("origins", () => {
  it("normalizes configured origins", () => {
    expect(normalizeOrigin("https://App.Example:443/")).toBe("https://app.example");
    expect(normalizeOrigin("http://localhost:3000")).toBe("http://localhost:3000");
    expect(normalizeOrigin("chrome-extension://ABCDEF")).toBe("chrome-extension://abcdef");
    expect(normalizeOrigin("*")).toBe("*");
    for (const bad of ["null", "app.example", "https://app.example/path", "https://u@app.example", "file:///tmp", "file://host", "", "https://"]) {
      expect(normalizeOrigin(bad), bad).toBeNull();
    }
  });

  it("'*' matches web origins only; extension origins must be listed", () => {
    const any = createOriginPolicy(["*"]);
    expect(any.enabled).toBe(true);
    expect(any.allows("https://x.example")).toBe(true);
    expect(any.allows("http://localhost:8080")).toBe(true);
    expect(any.allows("chrome-extension://abc")).toBe(false);
    expect(any.allows("null")).toBe(false);
    const listed = createOriginPolicy(["chrome-extension://abc", "https://a.example"]);
    expect(listed.allows("chrome-extension://abc")).toBe(true);
    expect(listed.allows("chrome-extension://abd")).toBe(false);
    expect(listed.allows("https://A.example")).toBe(true);
    expect(listed.allows("https://b.example")).toBe(false);
    const off = createOriginPolicy([]);
    expect(off.enabled).toBe(false);
    expect(off.allows("https://a.example")).toBe(false);
  });
});
