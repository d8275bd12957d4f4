import { execa } from "execa";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";
import { BIN, runCli } from "../helpers/spawnCli.js";

// Runs the built CLI (dist/): `npm run build` first.

/** A config that, merged with plain assignment, would bind every interface with no key and no Host/CORS checks. */
const PAYLOAD = { host: "0.0.0.0", insecureNoAuth: true, allowedHosts: ["*"], corsOrigins: ["*"] };
const FILES: [string, string][] = [
  ["tabagent.json", `{"__proto__": ${JSON.stringify(PAYLOAD)}}`],
  ["tabagent.yaml", `__proto__:\n  host: 0.0.0.0\n  insecureNoAuth: true\n  allowedHosts: ["*"]\n  corsOrigins: ["*"]\n`],
];

const dir = mkdtempSync(join(tmpdir(), "cfg-check-"));
function write(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

describe("tabagent config check and serve refuse unsafe config files", () => {
  it.each(FILES)("config check refuses __proto__ in %s", async (name, body) => {
    const file = write(name, body);
    const r = await runCli(["config", "check", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`'__proto__ (from ${file})': this key is not allowed`);
    expect(r.stdout).not.toContain("OK");
  });

  it.each(FILES)("serve refuses __proto__ in %s before it listens", async (name, body) => {
    const file = write(name, body);
    // A short timeout: a daemon that accepted the file would keep running (and listen on 0.0.0.0).
    const r = await execa(process.execPath, [BIN, "serve", "--config", file, "--port", "0", "--gpu", "off", "--discover", "none"], {
      reject: false,
      timeout: 20_000,
      env: { TABAGENT_LOG_LEVEL: "info" },
    });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toContain(`'__proto__ (from ${file})': this key is not allowed`);
    expect(String(r.stdout)).not.toContain("listening");
  });

  it("config check refuses constructor and prototype keys in model entries, by key path", async () => {
    const json = write("nested.json", JSON.stringify({ models: [{ path: "/m.gguf" }, { path: "/n.gguf", constructor: { prototype: { host: "0.0.0.0" } } }] }));
    const r = await runCli(["config", "check", json]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("models[1].constructor");
    const yaml = write("nested.yaml", "models:\n  - path: /m.gguf\n    prototype:\n      host: 0.0.0.0\n");
    const y = await runCli(["config", "check", yaml]);
    expect(y.code).toBe(2);
    expect(y.stderr).toContain("models[0].prototype");
  });

  it.each([
    ["dup.json", `{\n  "port": 9100,\n  "port": 9200\n}\n`, /'port \(from .*dup\.json\)': duplicate key at line 3, column 3 \(first at line 2, column 3\)/],
    ["dup.yaml", "port: 9100\nthreads: 2\nport: 9200\n", /'port \(from .*dup\.yaml\)': duplicate key at line 3, column 1 \(first at line 1, column 1\)/],
  ])("config check reports a duplicate key in %s with its line", async (name, body, message) => {
    const r = await runCli(["config", "check", write(name, body)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("config check still passes an ordinary file", async () => {
    const r = await runCli(["config", "check", write("ok.yaml", "port: 9100\naliases:\n  chat: m\n")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK");
  });
});

describe("tabagent config check runs serve's checks and lists every error", () => {
  let models: FixturePaths;
  beforeAll(async () => {
    models = await ensureFixtures();
  });

  it.each<[string, () => string, RegExp[]]>([
    [
      "an engine that cannot serve the model's format",
      () => `models:\n  - path: ${models.chatModelPath}\n    engine: onnxruntime\n`,
      [/'models\[0\]': cannot serve .*tiny-chat\.gguf: engine 'onnxruntime' cannot serve a gguf model \(possible: node-llama-cpp, llama-server\)/],
    ],
    ["a model path that does not exist", () => `models:\n  - path: ./missing.gguf\n`, [/'models\[0\]': cannot serve .*missing\.gguf: no such file or folder/]],
    ["a models folder that does not exist", () => `modelsDirs: [./no-such-folder]\n`, [/'modelsDirs\[0\]': cannot read .*no-such-folder: no such folder/]],
    ["a file that is not a model", () => `models:\n  - path: ./tabagent.json\n`, [/'models\[0\]': cannot serve .*tabagent\.json: not a model/]],
    [
      "two models with one id",
      () => `models:\n  - {id: m, path: ${models.chatModelPath}}\n  - {id: m, path: ${models.embeddingModelPath}}\n`,
      [/two models have the id 'm'/],
    ],
    ["a wildcard bind without a key", () => `host: 0.0.0.0\n`, [/'host': refusing to listen on 0\.0\.0\.0 without an API key/]],
    ["a key file that does not exist", () => `apiKeyFile: ./no-keys\n`, [/'apiKeyFile': cannot read the API key file .*no-keys \(ENOENT\)/]],
    [
      "unknown keys, each named with the nearest known one",
      () => `Port: 8080\nthreds: 2\nmodels_dir: [x]\nzzzzzz: 1\nmodels:\n  - {Path: /m.gguf}\nupstreams:\n  - {name: u, baseUrl: "http://127.0.0.1:1/v1", Prefix: a}\n`,
      [
        /'Port \(from .*\)': unknown setting; did you mean 'port'\?/,
        /'threds \(from .*\)': unknown setting; did you mean 'threads'\?/,
        /'models_dir \(from .*\)': unknown setting; did you mean 'modelsDirs'\?/,
        /'zzzzzz \(from .*\)': unknown setting \(the settings are listed in docs\/configuration\.md\)/,
        /'models\[0\]\.Path \(from .*\)': unknown key; did you mean 'path'\?/,
        /'upstreams\[0\]\.Prefix \(from .*\)': unknown key; did you mean 'prefix'\?/,
      ],
    ],
    [
      "several problems with the models and the bind address, all of them",
      () =>
        `host: 0.0.0.0\nmodels:\n  - {path: ${models.chatModelPath}, engine: onnxruntime}\n  - {path: ./missing.gguf}\n  - {path: ${models.embeddingModelPath}}\nmodelsDirs: [./nowhere]\n`,
      [
        /'host': refusing to listen/,
        /'models\[0\]': cannot serve .*engine 'onnxruntime'/,
        /'models\[1\]': cannot serve .*missing\.gguf/,
        /'modelsDirs\[0\]': cannot read/,
        /4 errors; serve would refuse this config/,
      ],
    ],
  ])("fails on %s (exit 2, no OK)", async (_, body, messages) => {
    const sub = mkdtempSync(join(dir, "case-"));
    writeFileSync(join(sub, "tabagent.json"), "{}");
    const file = join(sub, "tabagent.yaml");
    writeFileSync(file, body());
    const r = await runCli(["config", "check", file]);
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain("OK");
    for (const m of messages) expect(r.stderr).toMatch(m);
  });

  it.each([
    ["trailing comma", `{\n  "port": 8080,\n  "threads": 2,\n}\n`, /Expected double-quoted property name at line 4, column 1$/m],
    ["unexpected token", `{\n  "port": 8080,\n  "host": localhost\n}\n`, /Unexpected token 'l' at line 3, column 11$/m],
    ["file ends early", `{\n  "port": 8080,\n`, /at line 3, column 1$/m],
  ])("reports broken JSON (%s) by line and column, not by position", async (_, body, message) => {
    const r = await runCli(["config", "check", write(`broken-${body.length}.json`, body)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/position \d+/);
  });

  it("reports broken YAML by line and column", async () => {
    const r = await runCli(["config", "check", write("broken.yaml", "port: 8080\nmodels: [\n")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/at line \d+, column \d+/);
  });

  it("passes a file serve accepts, serving its models; a skipped folder entry is a warning", async () => {
    const folder = mkdtempSync(join(dir, "models-"));
    writeFileSync(join(folder, "notes.gguf"), "not a model");
    const file = write(
      "good.yaml",
      `models:\n  - {id: chat, path: ${models.chatModelPath}, engine: llama-server}\n  - {path: ${models.embeddingModelPath}}\nmodelsDirs: [${folder}]\n`,
    );
    const r = await runCli(["config", "check", file]);
    expect(r.stderr).toMatch(/warning: .*notes\.gguf/);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.stdout).toMatch(/OK \(2 models, 1 models dir, .*; 2 local models to serve\)/);
    expect(r.code).toBe(0);
  });
});
