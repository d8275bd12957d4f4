import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConfig, loadConfig } from "../../src/config/loadConfig.js";
import { locateJsonError } from "../../src/config/locateJsonError.js";
import { editDistance, nearestKey } from "../../src/config/nearestKey.js";

describe("checkConfig", () => {
  it("lists every schema problem, where loadConfig throws the first", () => {
    const base = { port: -1, threads: "x", Host: "a", models: [{ path: "/m.gguf", Engine: "onnxruntime" }] };
    const r = checkConfig({ base });
    expect(r.ok).toBe(false);
    const messages = r.ok ? [] : r.errors.map((e) => e.message);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Invalid setting 'port': /),
        expect.stringMatching(/^Invalid setting 'threads': .*; got "x"/),
        "Invalid setting 'Host': unknown setting; did you mean 'host'?",
        "Invalid setting 'models[0].Engine': unknown key; did you mean 'engine'?",
      ]),
    );
    expect(messages).toHaveLength(4);
    expect(() => loadConfig({ base })).toThrow(messages[0]!);
  });

  it("names the file an unknown key came from", () => {
    const file = join(mkdtempSync(join(tmpdir(), "check-config-")), "c.json");
    writeFileSync(file, `{"Port": 1}`);
    const r = checkConfig({ file });
    expect(r.ok ? [] : r.errors.map((e) => e.message)).toEqual([`Invalid setting 'Port (from ${file})': unknown setting; did you mean 'port'?`]);
  });

  it("reports a JSON syntax error by line and column", () => {
    const file = join(mkdtempSync(join(tmpdir(), "check-config-")), "c.json");
    writeFileSync(file, `{\n  "port": 1,\n}`);
    const r = checkConfig({ file });
    expect(r.ok ? [] : r.errors.map((e) => e.message)).toEqual([
      `Invalid setting 'config': cannot read ${file}: Expected double-quoted property name at line 3, column 1`,
    ]);
  });
});

describe("nearestKey", () => {
  const known = ["port", "host", "threads", "modelsDirs", "models", "contextSize", "idleTtlSeconds"];
  it.each([
    ["Port", "port"],
    ["HOST", "host"],
    ["models-dirs", "modelsDirs"],
    ["models_dir", "modelsDirs"],
    ["threds", "threads"],
    ["thraeds", "threads"],
    ["contextsize", "contextSize"],
    ["context_size", "contextSize"],
    ["idleTtl", undefined],
    ["x", undefined],
    ["verbose", undefined],
  ])("%s -> %s", (key, expected) => {
    expect(nearestKey(key, known)).toBe(expected);
  });

  it("counts a swap of neighbours as one edit", () => {
    expect(editDistance("ab", "ba")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
  });
});

describe("locateJsonError", () => {
  it.each([
    ['{"a": 1}', null],
    ['[1, 2.5e-3, true, null, "x\\u00e9"]', null],
    ['{"a": x}', 6],
    ['{"a": tru}', 9],
    ['{"a":1,}', 7],
    ["[1,,2]", 3],
    ['{"a":01}', 6],
    ['{"a": "\\q"}', 8],
    ['{"a":1', 6],
    ["", 0],
    ['{"a":1}}', 7],
    ['{"a": "x\ny"}', 8],
  ])("%j -> %j", (text, offset) => {
    expect(locateJsonError(text)).toBe(offset);
    if (offset === null) expect(() => JSON.parse(text) as unknown).not.toThrow();
    else expect(() => JSON.parse(text) as unknown).toThrow();
  });
});
