import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { runCli } from "../helpers/spawnCli.js";

// The spawned checks run the built CLI (dist/): `npm run build` first. The table check calls main() in process:
// every call ends at a parse error or at --help, so nothing is started.

const COMMANDS = ["serve", "models", "ls", "rm", "pull", "detect", "doctor", "setup", "config"] as const;
type Command = (typeof COMMANDS)[number];

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs main() in process, collecting what it writes. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(argv, {});
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const flagsIn = (text: string) => new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!).filter((f) => f !== "help"));

/** The long flags a command's help documents (--help itself aside: every command takes it). */
async function documented(command: Command): Promise<Set<string>> {
  if (command === "serve" || command === "models") {
    const help = (await run(["--help"])).stdout;
    const section = help.slice(help.indexOf("Options of serve and models"), help.indexOf("Config file only"));
    expect(section).toMatch(/--json, --refresh\s+models only/);
    const flags = flagsIn(section);
    if (command === "serve") for (const f of ["json", "refresh"]) flags.delete(f);
    return flags;
  }
  const r = await run([command, "--help"]);
  expect(r.code).toBe(0);
  return flagsIn(r.stdout);
}

/** Whether the command's parser takes the flag: with a value, or (a boolean) without one. */
async function accepts(command: Command, flag: string): Promise<boolean> {
  const withValue = await run([command, `--${flag}=x`, "--help"]);
  if (withValue.code === 0) return true;
  if (/does not take an argument/.test(withValue.stderr)) return (await run([command, `--${flag}`, "--help"])).code === 0;
  expect(withValue.stderr).toMatch(/Unknown option/);
  return false;
}

describe("every flag a command accepts is documented in its help, and every documented flag is accepted", () => {
  it("holds for each command, over every flag any help names", async () => {
    const all = new Set<string>(flagsIn((await run(["--help"])).stdout));
    const docs = new Map<Command, Set<string>>();
    for (const c of COMMANDS) {
      docs.set(c, await documented(c));
      for (const f of docs.get(c)!) all.add(f);
    }
    const mismatches: string[] = [];
    for (const c of COMMANDS) {
      for (const f of all) {
        const isDocumented = docs.get(c)!.has(f);
        if ((await accepts(c, f)) !== isDocumented) mismatches.push(`${c} --${f}: ${isDocumented ? "documented but refused" : "accepted but not documented"}`);
      }
    }
    expect(mismatches).toEqual([]);
    // The listing flags that were once accepted and ignored.
    expect([...docs.get("ls")!]).toEqual(expect.arrayContaining(["model", "models-dir", "discover", "url", "json", "refresh"]));
    expect([...docs.get("rm")!].sort()).toEqual(["config", "store-dir", "url"]);
  });
});

describe("tabagent CLI usage errors (built CLI)", () => {
  it.each([
    [["serve", "--json"], /Unknown option '--json'.*options of `tabagent models`/],
    [["serve", "--refresh"], /Unknown option '--refresh'.*options of `tabagent models`/],
    [["rm", "--json", "some-id"], /tabagent rm: Unknown option '--json'/],
    [["rm", "--refresh", "some-id"], /tabagent rm: Unknown option '--refresh'/],
    [["rm", "--models-dir", "/tmp", "some-id"], /tabagent rm: Unknown option '--models-dir'/],
    [["rm", "--discover", "none", "some-id"], /tabagent rm: Unknown option '--discover'/],
    [["ls", "--hub-url", "http://127.0.0.1:9"], /tabagent ls: Unknown option '--hub-url'/],
    [["ls", "--hf-token-file", "/tmp/token"], /tabagent ls: Unknown option '--hf-token-file'/],
    [["ls", "some-id"], /tabagent ls: unexpected argument 'some-id'/],
    [["detect", "--no-probe", "--data-dir", "/tmp", "x"], /--data-dir .* means nothing with --no-probe/],
  ])("refuses %j with exit 2, naming the problem", async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it("no command: the usage on stderr, exit 2", async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/name a command[\s\S]*Usage:\n {2}tabagent serve/);
  });

  it.each([["--help"], ["-h"], ["help"]])("%s: the usage on stdout, exit 0", async (flag) => {
    const r = await runCli([flag]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^tabagent: a local inference daemon/);
  });

  it("a command missing its operands prints its usage on stderr", async () => {
    for (const command of ["detect", "pull", "rm"]) {
      const r = await runCli([command]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(new RegExp(`Usage: tabagent ${command}`));
    }
  });
});
