import { execa } from "execa";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
