import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_PORT } from "../../src/config/configSchema.js";
import { loadConfig, parseModelSpec } from "../../src/config/loadConfig.js";
import { ConfigError } from "../../src/core/errors.js";

describe("loadConfig", () => {
  it("has defaults", () => {
    const c = loadConfig();
    expect(c.host).toBe("127.0.0.1");
    expect(c.port).toBe(DEFAULT_PORT);
    expect(c.threads).toBeGreaterThanOrEqual(1);
    expect(c.idleTtlSeconds).toBe(300);
  });

  it("layers defaults < env < flags", () => {
    const c = loadConfig({ env: { TABAGENT_PORT: "9000", TABAGENT_THREADS: "3" }, flags: { port: "9001" } });
    expect(c.port).toBe(9001);
    expect(c.threads).toBe(3);
  });

  it("parses model lists from env and repeated flags", () => {
    const c = loadConfig({ env: { TABAGENT_MODELS: "a=/x/a.gguf, /y/b.gguf" }, flags: { modelsDirs: ["/m1", "/m2"] } });
    expect(c.models).toEqual([{ id: "a", path: "/x/a.gguf" }, { path: "/y/b.gguf" }]);
    expect(c.modelsDirs).toEqual(["/m1", "/m2"]);
    expect(loadConfig({ flags: { models: ["x=/p,with,commas.gguf"] } }).models).toEqual([{ id: "x", path: "/p,with,commas.gguf" }]);
  });

  it.each([
    [{ flags: { port: "80a" } }, /port \(from --port\).*80a/],
    [{ flags: { port: "70000" } }, /port \(from --port\)/],
    [{ env: { TABAGENT_THREADS: "0" } }, /threads \(from TABAGENT_THREADS\)/],
    [{ env: { TABAGENT_IDLE_TTL: "1.5" } }, /idleTtlSeconds \(from TABAGENT_IDLE_TTL\)/],
    [{ flags: { logLevel: "loud" } }, /logLevel \(from --log-level\)/],
    [{ flags: { gpuLayers: "lots" } }, /gpuLayers/],
    [{ flags: { models: [""] } }, /models\[0\]\.path \(from --model\)/],
  ])("names the bad setting %#", (input, message) => {
    expect(() => loadConfig(input)).toThrow(ConfigError);
    expect(() => loadConfig(input)).toThrow(message);
  });

  it("accepts gpu layers as a number or keyword", () => {
    expect(loadConfig({ flags: { gpuLayers: "12" } }).gpuLayers).toBe(12);
    expect(loadConfig({ flags: { gpuLayers: "max" } }).gpuLayers).toBe("max");
  });

  it("parses model specs", () => {
    expect(parseModelSpec("m=/a/b.gguf")).toEqual({ id: "m", path: "/a/b.gguf" });
    expect(parseModelSpec("/a/b.gguf")).toEqual({ path: "/a/b.gguf" });
    expect(parseModelSpec("/data/x=1.gguf")).toEqual({ path: "/data/x=1.gguf" });
  });
});

describe("config file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cfg-"));
  const write = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, body);
    return p;
  };

  it("sits between defaults and env/flags; relative model paths are relative to the file", () => {
    const file = write("a.json", JSON.stringify({ port: 9100, threads: 2, models: [{ id: "m", path: "models/m.gguf", engine: "llama-server" }], modelsDirs: ["more"] }));
    const c = loadConfig({ file, env: { TABAGENT_THREADS: "3" } });
    expect(c.port).toBe(9100);
    expect(c.threads).toBe(3);
    expect(c.models).toEqual([{ id: "m", path: join(dir, "models/m.gguf"), engine: "llama-server" }]);
    expect(c.modelsDirs).toEqual([join(dir, "more")]);
    expect(loadConfig({ env: { TABAGENT_CONFIG: file }, flags: { port: "9200" } }).port).toBe(9200);
  });

  it.each([
    ["bad.json", "{ nope", /cannot read .*bad\.json/],
    ["array.json", "[1]", /must hold a JSON object/],
    ["unknown.json", JSON.stringify({ prot: 1 }), /'prot \(from .*unknown\.json\)': unknown setting; did you mean 'port'\?/],
    ["engine.json", JSON.stringify({ models: [{ path: "/x.gguf", engine: "warp" }] }), /models\[0\]\.engine \(from .*engine\.json\).*expected one of/],
    ["type.json", JSON.stringify({ port: "80" }), /port \(from .*type\.json\)/],
  ])("names what is wrong in %s", (name, body, message) => {
    const file = write(name, body);
    expect(() => loadConfig({ file })).toThrow(ConfigError);
    expect(() => loadConfig({ file })).toThrow(message);
  });
});

describe("per-model chatTemplate", () => {
  it("is capped at 64 KiB, the size a child's command line can carry, with a message that says so", () => {
    const entry = (chatTemplate: string) => ({ base: { models: [{ id: "m", path: "/m.gguf", chatTemplate }] } });
    expect(loadConfig(entry("x".repeat(64 * 1024))).models[0]!.chatTemplate).toHaveLength(64 * 1024);
    expect(() => loadConfig(entry("x".repeat(64 * 1024 + 1)))).toThrow(/models\[0\]\.chatTemplate.*longer than 64 KiB/);
  });
});

describe("upstreams", () => {
  it("takes presets and NAME=URL from flags and env", () => {
    const c = loadConfig({ flags: { upstreams: ["lmstudio", "big=http://10.0.0.5:8000/v1"] } });
    expect(c.upstreams.map((u) => [u.name, u.baseUrl, u.prefix, u.parallel])).toEqual([
      ["lmstudio", undefined, "", 16],
      ["big", "http://10.0.0.5:8000/v1", "", 16],
    ]);
    expect(loadConfig({ env: { TABAGENT_UPSTREAMS: "ollama, vllm" } }).upstreams.map((u) => u.name)).toEqual(["ollama", "vllm"]);
  });

  it.each([
    [["mystery"], /needs a baseUrl \(presets: lmstudio, ollama, vllm\)/],
    [["x=ftp://host/v1"], /upstreams/],
    [["x=http://a/v1", "x=http://b/v1"], /two upstreams are named 'x'/],
    [["bad name=http://a/v1"], /upstream names use/],
  ])("refuses %j", (upstreams, message) => {
    expect(() => loadConfig({ flags: { upstreams } })).toThrow(message);
  });
});
