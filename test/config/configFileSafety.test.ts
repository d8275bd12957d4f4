import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig, readConfigFile } from "../../src/config/loadConfig.js";
import { ConfigError } from "../../src/core/errors.js";

/** What a hostile config file uses to switch off bind safety when keys are merged with plain assignment. */
const POLLUTION = { host: "0.0.0.0", insecureNoAuth: true, allowedHosts: ["*"], corsOrigins: ["*"] };
const POLLUTED_JSON = `{"__proto__": ${JSON.stringify(POLLUTION)}}`;
const POLLUTED_YAML = `__proto__:\n  host: 0.0.0.0\n  insecureNoAuth: true\n  allowedHosts: ["*"]\n  corsOrigins: ["*"]\n`;

const dir = mkdtempSync(join(tmpdir(), "cfg-safety-"));
function write(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

/** Loads and returns the error (or fails the test when nothing was thrown). */
function refusal(input: Parameters<typeof loadConfig>[0]): ConfigError {
  try {
    loadConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("loadConfig accepted the file");
}

function expectNoPollution(): void {
  const plain: Record<string, unknown> = {};
  for (const key of ["host", "insecureNoAuth", "allowedHosts", "corsOrigins", "port"]) expect(plain[key]).toBeUndefined();
  expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
  expect(Object.keys(Object.prototype)).toEqual([]);
}

afterEach(expectNoPollution);

describe("__proto__, constructor and prototype keys", () => {
  it.each([
    ["tabagent.json", POLLUTED_JSON],
    ["tabagent.yaml", POLLUTED_YAML],
    ["tabagent.yml", POLLUTED_YAML],
  ])("refuses the bind-safety payload in %s, naming the key and the file", (name, body) => {
    const file = write(name, body);
    const err = refusal({ file });
    expect(err.message).toMatch(new RegExp(`'__proto__ \\(from .*${name.replace(".", "\\.")}\\)'.*this key is not allowed`));
    expect(() => readConfigFile(file)).toThrow(/__proto__.*this key is not allowed/);
    // Neither through the environment, flags nor the programmatic base does the file's payload come back.
    expect(() => loadConfig({ env: { TABAGENT_CONFIG: file } })).toThrow(ConfigError);
    expect(() => loadConfig({ file, flags: { port: "0" }, base: { discover: [] } })).toThrow(/__proto__/);
  });

  it("refuses an escaped __proto__ in JSON", () => {
    const file = write("escaped.json", `{"\\u005f_proto__": ${JSON.stringify(POLLUTION)}}`);
    expect(refusal({ file }).message).toMatch(/__proto__.*this key is not allowed/);
  });

  it.each([
    ["models-constructor.json", JSON.stringify({ models: [{ path: "/m.gguf", constructor: { prototype: { host: "0.0.0.0" } } }] }), "models[0].constructor"],
    ["models-prototype.json", JSON.stringify({ models: [{ path: "/a.gguf" }, { path: "/m.gguf", prototype: { host: "0.0.0.0" } }] }), "models[1].prototype"],
    ["models-proto.json", `{"models": [{"path": "/m.gguf", "__proto__": {"id": "x"}}]}`, "models[0].__proto__"],
    ["models-constructor.yaml", "models:\n  - path: /m.gguf\n    constructor:\n      prototype: {host: 0.0.0.0}\n", "models[0].constructor"],
    ["models-prototype.yaml", "models:\n  - path: /a.gguf\n  - path: /m.gguf\n    prototype: {host: 0.0.0.0}\n", "models[1].prototype"],
    ["upstream-proto.yaml", "upstreams:\n  - name: ollama\n    __proto__: {baseUrl: 'http://evil/v1'}\n", "upstreams[0].__proto__"],
    ["aliases-constructor.yaml", "aliases:\n  constructor: qwen\n", "aliases.constructor"],
    ["top-prototype.json", JSON.stringify({ prototype: {} }), "prototype"],
  ])("refuses nested keys: %s", (name, body, keyPath) => {
    const file = write(name, body);
    const err = refusal({ file });
    expect(err.setting).toBe(`${keyPath} (from ${file})`);
    expect(err.message).toContain("this key is not allowed");
  });

  it("refuses them in programmatic settings too", () => {
    const base = JSON.parse(`{"models": [{"path": "/m.gguf", "__proto__": {"id": "x"}}]}`) as Record<string, unknown>;
    expect(refusal({ base }).setting).toMatch(/^models\[0\]\.__proto__/);
    expect(refusal({ base: JSON.parse(POLLUTED_JSON) as never }).setting).toMatch(/^__proto__/);
  });

  it.each([
    ["merge-key.yaml", "%YAML 1.1\n---\n<<: {__proto__: {host: 0.0.0.0, insecureNoAuth: true}}\n", "__proto__"],
    ["anchored-key.yaml", "x: &k __proto__\n*k : {host: 0.0.0.0}\n", "__proto__"],
    ["quoted-key.yaml", 'models:\n  - path: /m.gguf\n    "constructor": {}\n', "models[0].constructor"],
  ])("refuses them however YAML spells them: %s", (name, body, keyPath) => {
    const file = write(name, body);
    expect(refusal({ file }).setting).toBe(`${keyPath} (from ${file})`);
  });

  it("does not let a YAML alias that contains itself through", () => {
    const file = write("cycle.yaml", "aliases: &a\n  x: *a\n");
    expect(refusal({ file }).message).toMatch(/aliases/);
  });

  it("keeps an ordinary file working, with settings that are its own", () => {
    const file = write("ok.json", JSON.stringify({ port: 9100, models: [{ id: "m", path: "/m.gguf" }], aliases: { chat: "m" } }));
    const c = loadConfig({ file });
    expect(c.host).toBe("127.0.0.1");
    expect(c.insecureNoAuth).toBe(false);
    expect(c.port).toBe(9100);
    expect(c.models).toEqual([{ id: "m", path: "/m.gguf" }]);
    expect(c.aliases).toEqual({ chat: "m" });
  });
});

describe("duplicate keys", () => {
  it.each([
    ["dup.json", `{\n  "port": 9100,\n  "threads": 2,\n  "port": 9200\n}\n`, "port", /line 4, column 3.*first at line 2, column 3/],
    [
      "dup-nested.json",
      `{"models": [\n  {"id": "a", "path": "/a.gguf"},\n  {"id": "b", "path": "/b.gguf",\n   "id": "c"}\n]}`,
      "models[1].id",
      /line 4, column 4.*first at line 3, column 4/,
    ],
    ["dup-escaped.json", `{"host": "127.0.0.1",\n "\\u0068ost": "0.0.0.0"}`, "host", /line 2, column 2/],
  ])("refuses them in JSON with the line and column: %s", (name, body, keyPath, where) => {
    const file = write(name, body);
    const err = refusal({ file });
    expect(err.setting).toBe(`${keyPath} (from ${file})`);
    expect(err.message).toMatch(/duplicate key/);
    expect(err.message).toMatch(where);
  });

  it("does not mistake equal keys in different objects, or strings that look like keys, for duplicates", () => {
    const file = write(
      "nodup.json",
      JSON.stringify({
        models: [
          { id: "a", path: "/a.gguf" },
          { id: "b", path: "/b.gguf" },
        ],
        aliases: { id: "a", 'x"y': "b" },
      }),
    );
    expect(() => readConfigFile(file)).not.toThrow();
  });

  it.each([
    ["dup.yaml", "port: 9100\nthreads: 2\nport: 9200\n", "port", /line 3, column 1/],
    ["dup-nested.yaml", "models:\n  - id: a\n    path: /a.gguf\n  - id: b\n    path: /b.gguf\n    id: c\n", "models[1].id", /line 6, column 5/],
    ["dup-quoted.yaml", 'aliases:\n  chat: a\n  "chat": b\n', "aliases.chat", /line 3, column 3/],
    ["dup-number.yaml", 'aliases:\n  1: a\n  "1": b\n', "aliases.1", /line 3, column 3/],
  ])("refuses them in YAML with the line and column: %s", (name, body, keyPath, where) => {
    const file = write(name, body);
    const err = refusal({ file });
    expect(err.setting).toBe(`${keyPath} (from ${file})`);
    expect(err.message).toMatch(/duplicate key/);
    expect(err.message).toMatch(where);
  });
});
