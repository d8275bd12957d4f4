import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { runCli } from "../helpers/spawnCli.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "setup-cmd-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("tabagent setup python", () => {
  it("with the venv already made: prints its interpreter at once, nothing else on stdout", async () => {
    // The dev venv test/globalSetup.ts prepared lives at <data-dir>/python/<key>/bin/python.
    const python = await pythonExecutable();
    const dataDir = dirname(dirname(dirname(dirname(python))));
    const r = await runCli(["setup", "python", "--dev", "--data-dir", dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(python);
  });

  it("a missing Python says what to install and exits 1; bad arguments exit 2 with the usage", async () => {
    const r = await runCli(["setup", "python", "--data-dir", join(dir, "data")], { TABAGENT_PYTHON_BASE: join(dir, "no-python3") });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no Python interpreter .* found\. Install Python 3\.10 or newer/);
    expect(r.stderr).toMatch(/run `tabagent setup python` again/);
    const both = await runCli(["setup", "python", "--cuda", "--cpu"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--cuda and --cpu exclude each other[^]*Usage: tabagent setup python/);
    expect((await runCli(["setup", "ruby"])).code).toBe(2);
    expect((await runCli(["setup", "python", "--bogus"])).code).toBe(2);
  });
});
