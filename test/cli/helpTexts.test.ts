import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/spawnCli.js";

// The built CLI (dist/): `npm run build` first.

describe("detect and doctor explain themselves", () => {
  it("detect --help says what it does, documents each option and the exit codes", async () => {
    const r = await runCli(["detect", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").length).toBeGreaterThan(15);
    expect(r.stdout).toMatch(/^Usage: tabagent detect SOURCE\.\.\./);
    expect(r.stdout).toMatch(/Hugging Face repo owner\/name/);
    for (const flag of ["--json", "--engine ENGINE", "--hub-url URL", "--no-probe", "--data-dir DIR", "-h, --help"])
      expect(r.stdout).toMatch(new RegExp(`^  ${flag}\\s+\\S`, "m"));
    expect(r.stdout).toMatch(/node-llama-cpp, llama-server/);
    expect(r.stdout).toMatch(/^Exit 0 /m);
  });

  it("detect with no SOURCE prints the same usage on stderr (exit 2)", async () => {
    const r = await runCli(["detect"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe((await runCli(["detect", "--help"])).stdout);
  });

  it("doctor --help says what it checks, its options and its exit code", async () => {
    const r = await runCli(["doctor", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").length).toBeGreaterThan(8);
    expect(r.stdout).toMatch(/^Usage: tabagent doctor \[--json\]/);
    for (const what of ["node-llama-cpp", "llama-server", "Python", "engine", "TABAGENT_LLAMA_SERVER"]) expect(r.stdout).toContain(what);
    for (const flag of ["--json", "-h, --help"]) expect(r.stdout).toMatch(new RegExp(`^  ${flag}\\s+\\S`, "m"));
    expect(r.stdout).toMatch(/^Exit 0 /m);
  });

  it("detect names a missing path once", async () => {
    const r = await runCli(["detect", "--no-probe", "/no/such/model.gguf"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("tabagent detect: /no/such/model.gguf: no such file or folder, and not a Hugging Face repo id");
  });
});
