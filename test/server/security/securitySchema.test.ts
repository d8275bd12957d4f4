import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseBooleanSetting, securityConfigShape } from "../../../src/config/securityConfigShape.js";
import { ConfigError } from "../../../src/core/errors.js";
import { parseApiKeyFile, resolveApiKeys, type KeyFileAccess } from "../../../src/server/security/securitySchema.js";

const KEY_A = "sk-tabagent-aaaaaaaaaaaaaaaaaaaa";
const KEY_B = "sk-tabagent-bbbbbbbbbbbbbbbbbbbb";
const schema = z.strictObject(securityConfigShape);

describe("securityConfigShape", () => {
  it("defaults to no keys, no CORS, the loopback host check, no insecure flag", () => {
    expect(schema.parse({})).toEqual({ apiKeys: [], insecureNoAuth: false, allowedHosts: [], corsOrigins: [] });
  });

  it("accepts and normalizes valid values", () => {
    const parsed = schema.parse({
      apiKeys: [KEY_A],
      apiKeyFile: "/etc/tabagent/keys",
      insecureNoAuth: true,
      allowedHosts: ["TabAgent.lan", "::1", "*"],
      corsOrigins: ["https://App.Example:443", "chrome-extension://abcdef", "*"],
    });
    expect(parsed.allowedHosts).toEqual(["tabagent.lan", "[::1]", "*"]);
    expect(parsed.corsOrigins).toEqual(["https://app.example", "chrome-extension://abcdef", "*"]);
  });

  it("refuses short keys, keys with spaces or commas, bad hosts and bad origins", () => {
    for (const key of ["short", "sk-tabagent aaaaaaaaaaaa", "sk-tabagent,aaaaaaaaaaaa", "sk-tabagent-ääääääääääää"]) {
      expect(schema.safeParse({ apiKeys: [key] }).success, key).toBe(false);
    }
    const issue = schema.safeParse({ apiKeys: ["short"] }).error?.issues[0];
    expect(issue?.message).toMatch(/16 to 512/);
    expect(issue?.message).not.toContain("short"); // the message never quotes a key
    expect(schema.safeParse({ allowedHosts: ["http://x/"] }).success).toBe(false);
    expect(schema.safeParse({ corsOrigins: ["https://a.example/path"] }).success).toBe(false);
    expect(schema.safeParse({ corsOrigins: ["null"] }).success).toBe(false);
  });
});

describe("parseBooleanSetting", () => {
  it("reads the usual spellings and passes anything else on for the schema to refuse", () => {
    for (const yes of ["1", "true", "TRUE", " yes ", "on"]) expect(parseBooleanSetting(yes), yes).toBe(true);
    for (const no of ["0", "false", "No", "off"]) expect(parseBooleanSetting(no), no).toBe(false);
    expect(parseBooleanSetting("maybe")).toBe("maybe");
    expect(schema.safeParse({ insecureNoAuth: parseBooleanSetting("maybe") }).success).toBe(false);
  });
});

describe("parseApiKeyFile", () => {
  it("reads one key per line, skipping blanks and comments, trimming", () => {
    const text = `# keys for tabagent\n\n  ${KEY_A}  \r\n${KEY_B} # laptop\n   # indented comment\n`;
    expect(parseApiKeyFile(text, "keys.txt")).toEqual([KEY_A, KEY_B]);
  });

  it("names the bad line without quoting it", () => {
    const attempt = () => parseApiKeyFile(`${KEY_A}\nnot a key at all\n`, "keys.txt");
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/keys\.txt line 2/);
    expect(attempt).not.toThrow(/not a key/);
  });
});

describe("resolveApiKeys", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tabagent-keys-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("without a file: the configured keys, deduplicated", () => {
    expect(resolveApiKeys({ apiKeys: [KEY_A, KEY_A] })).toEqual({ keys: [KEY_A], warnings: [] });
  });

  it("adds the file's keys; a private file gives no warning", async () => {
    const path = join(dir, "private.keys");
    await writeFile(path, `${KEY_B}\n${KEY_A}\n`);
    await chmod(path, 0o600);
    expect(resolveApiKeys({ apiKeys: [KEY_A], apiKeyFile: path })).toEqual({ keys: [KEY_A, KEY_B], warnings: [] });
  });

  it.skipIf(process.platform === "win32")("warns (without the key) when others or the group can read the file", async () => {
    const path = join(dir, "open.keys");
    await writeFile(path, `${KEY_A}\n`);
    await chmod(path, 0o644);
    const open = resolveApiKeys({ apiKeys: [], apiKeyFile: path });
    expect(open.keys).toEqual([KEY_A]);
    expect(open.warnings).toHaveLength(1);
    expect(open.warnings[0]).toMatch(/every user.*mode 644.*chmod 600/);
    expect(open.warnings[0]).not.toContain(KEY_A);
    await chmod(path, 0o640);
    expect(resolveApiKeys({ apiKeys: [], apiKeyFile: path }).warnings[0]).toMatch(/its group/);
  });

  it("a missing or unreadable file is a ConfigError naming apiKeyFile", () => {
    const missing = join(dir, "nope.keys");
    expect(() => resolveApiKeys({ apiKeys: [], apiKeyFile: missing })).toThrow(ConfigError);
    expect(() => resolveApiKeys({ apiKeys: [], apiKeyFile: missing })).toThrow(/Invalid setting 'apiKeyFile'.*cannot read.*ENOENT/);
    const denied: KeyFileAccess = {
      readFile: () => {
        throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
      },
      mode: () => 0o600,
    };
    expect(() => resolveApiKeys({ apiKeys: [], apiKeyFile: "/etc/keys" }, denied)).toThrow(/cannot read the API key file \/etc\/keys \(EACCES\)/);
    expect(() => resolveApiKeys({ apiKeys: [], apiKeyFile: dir })).toThrow(/cannot read.*EISDIR/);
  });

  it("a file without any key is an error: the daemon must not start open by mistake", () => {
    const empty: KeyFileAccess = { readFile: () => "# nothing yet\n\n", mode: () => null };
    expect(() => resolveApiKeys({ apiKeys: [KEY_A], apiKeyFile: "keys" }, empty)).toThrow(/holds no API key/);
  });
});
