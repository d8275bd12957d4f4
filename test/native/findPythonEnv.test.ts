import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPythonEnv, missingPythonHelp, runtimeRequirementsHash } from "../../src/native/findPythonEnv.js";

let dir: string;

async function fakeVenv(name: string, info: object, withPython = true): Promise<string> {
  const venv = join(dir, "data", "python", name);
  await mkdir(join(venv, "bin"), { recursive: true });
  if (withPython) {
    await writeFile(join(venv, "bin", "python"), "#!/bin/sh\n");
    await chmod(join(venv, "bin", "python"), 0o755);
  }
  await writeFile(join(venv, "venv-info.json"), JSON.stringify(info));
  return join(venv, "bin", "python");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "find-python-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("findPythonEnv", () => {
  it("reports a missing data folder with the setup command", async () => {
    const found = await findPythonEnv({ env: {}, dataDir: join(dir, "nowhere") });
    expect(found.python).toBeNull();
    expect(missingPythonHelp(found)).toMatch(/no venv yet.*Run `tabagent setup python`/);
  });

  it("uses a venv built from this version's requirements, the runtime-only one before a dev one", async () => {
    const hash = await runtimeRequirementsHash();
    const base = { python: "3.11", variant: "default", runtimeRequirementsSha256: hash };
    const dev = await fakeVenv("aaa", { ...base, key: "aaa", dev: true });
    expect((await findPythonEnv({ env: {}, dataDir: join(dir, "data") })).python).toBe(dev);
    const runtime = await fakeVenv("bbb", { ...base, key: "bbb", dev: false });
    const found = await findPythonEnv({ env: {}, dataDir: join(dir, "data") });
    expect(found).toMatchObject({ python: runtime, source: "data-dir" });
  });

  it("skips venvs from other requirements, half-made ones and ones without an interpreter, saying why", async () => {
    await rm(join(dir, "data"), { recursive: true, force: true });
    await fakeVenv("old", { key: "old", python: "3.11", variant: "default", dev: false, runtimeRequirementsSha256: "0".repeat(64) });
    await fakeVenv("broken", { key: "broken", python: "3.11", variant: "default", dev: false, runtimeRequirementsSha256: await runtimeRequirementsHash() }, false);
    await mkdir(join(dir, "data", "python", "half-made"), { recursive: true });
    const found = await findPythonEnv({ env: {}, dataDir: join(dir, "data") });
    expect(found.python).toBeNull();
    expect(found.tried.map((t) => t.problem).sort()).toEqual(["bin/python is missing", "built from other requirements (an older or newer TabAgent)"]);
  });

  it("an explicit interpreter (config, then TABAGENT_PYTHON) wins, and a wrong one is an error, not a fallback", async () => {
    const python = await fakeVenv("ccc", { key: "ccc", python: "3.11", variant: "default", dev: false, runtimeRequirementsSha256: await runtimeRequirementsHash() });
    expect(await findPythonEnv({ env: { TABAGENT_PYTHON: python }, dataDir: join(dir, "none") })).toMatchObject({ python, source: "env" });
    expect(await findPythonEnv({ configPath: python, env: { TABAGENT_PYTHON: "/nope" } })).toMatchObject({ python, source: "config" });
    const wrong = await findPythonEnv({ env: { TABAGENT_PYTHON: join(dir, "missing") }, dataDir: join(dir, "data") });
    expect(wrong.python).toBeNull();
    expect(missingPythonHelp(wrong)).toContain(`env ${join(dir, "missing")}: not an executable file`);
  });
});
