import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";
import { runCli, startServe, type ServeProcess } from "../helpers/spawnCli.js";

let fixtures: FixturePaths;
let tmp: string;
let dirs = 0;
const started: ServeProcess[] = [];
beforeAll(async () => {
  fixtures = await ensureFixtures();
  tmp = await mkdtemp(join(tmpdir(), "tabagent-serve-start-"));
});
afterEach(() => {
  for (const s of started.splice(0)) s.child.kill("SIGKILL");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A data folder of its own, so these daemons never meet a daemon running on this machine (or each other). */
const dataDir = () => join(tmp, `data-${++dirs}`);

async function serve(args: string[], env: Record<string, string>): Promise<ServeProcess> {
  const s = await startServe(args, env);
  started.push(s);
  return s;
}

const portOf = (url: string) => new URL(url).port;
const NO_STACK = /^\s+at |node:net|Error: listen/m;

describe("tabagent serve: the port is taken", () => {
  it("by a tabagent daemon: says so with its version, how to pick another port; exit 1, no stack", async () => {
    const first = await serve([], { TABAGENT_DATA_DIR: dataDir() });
    const r = await runCli(["serve", "--port", portOf(first.url), "--gpu", "off"], { TABAGENT_DATA_DIR: dataDir() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^tabagent: cannot listen on 127\\.0\\.0\\.1:${portOf(first.url)}: the port is already in use`, "m"));
    expect(r.stderr).toMatch(/a tabagent daemon \(version \d+\.\d+\.\d+[^)]*\) already serves http:\/\/127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/--port N \(or TABAGENT_PORT=N/);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.stdout).not.toMatch(/tabagent listening/);
  });

  it("by another program: says it is not a tabagent daemon", async () => {
    const other: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const port = String((other.address() as { port: number }).port);
      const r = await runCli(["serve", "--port", port, "--gpu", "off"], { TABAGENT_DATA_DIR: dataDir() });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use; another program holds it`));
      expect(r.stderr).toMatch(/--port N/);
      expect(r.stderr).not.toMatch(NO_STACK);
    } finally {
      other.close();
    }
  });
});

describe("tabagent serve: one daemon per data folder", () => {
  it("a second daemon on the same folder is refused, naming the first's pid and address; a dead one's lock is taken over", async () => {
    const dir = dataDir();
    const first = await serve([], { TABAGENT_DATA_DIR: dir });
    const lock = await readFile(join(dir, "daemon.lock"), "utf8");
    expect(lock).toBe(`${first.child.pid}\n${first.url}\n`);

    // A different port: the data folder alone is what refuses it.
    const r = await runCli(["serve", "--port", "0", "--gpu", "off"], { TABAGENT_DATA_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`another tabagent daemon (pid ${first.child.pid}, listening on ${first.url}) is using the data folder ${dir}`);
    expect(r.stderr).toMatch(/--data-dir DIR \(TABAGENT_DATA_DIR\)/);
    expect(r.stderr).not.toMatch(NO_STACK);

    // Killed outright, the first leaves its lock behind: the next daemon takes it over.
    first.child.kill("SIGKILL");
    await first.child;
    const next = await serve([], { TABAGENT_DATA_DIR: dir });
    expect(await readFile(join(dir, "daemon.lock"), "utf8")).toBe(`${next.child.pid}\n${next.url}\n`);
    // Stopped properly, it removes its lock.
    next.child.kill("SIGTERM");
    expect((await next.child).exitCode).toBe(0);
    await expect(readFile(join(dir, "daemon.lock"), "utf8")).rejects.toThrow(/ENOENT/);
  });
});

describe("tabagent serve: startup lines", () => {
  it("warns once when --threads is above the CPUs available, naming both numbers", async () => {
    const cpus = availableParallelism();
    const s = await serve(["--threads", String(cpus + 2)], { TABAGENT_DATA_DIR: dataDir() });
    const warnings = s.logs.filter((l) => l.includes("more than the") && l.includes("CPUs available"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({
      level: 40,
      threads: cpus + 2,
      cpus,
      msg: expect.stringContaining(`threads ${cpus + 2}: more than the ${cpus} CPUs`),
    });
    // Within the CPUs: no warning.
    const quiet = await serve(["--threads", String(cpus)], { TABAGENT_DATA_DIR: dataDir() });
    expect(quiet.logs.some((l) => l.includes("CPUs available"))).toBe(false);
  });

  it("with JSON logs (stdout not a terminal), the example curl line is plain text on stderr, once", async () => {
    const s = await serve(["--model", fixtures.chatModelPath], { TABAGENT_DATA_DIR: dataDir() });
    // The line follows the "listening" line at once; give the pipe a moment.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stderr = s.logs.filter((l) => !l.startsWith("{")).join("");
    const tries = stderr.split("\n").filter((l) => l.startsWith("try: "));
    expect(tries).toEqual([
      `try: curl ${s.url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"tiny-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'`,
    ]);
    expect(s.logs.filter((l) => l.startsWith("{") && l.includes("curl"))).toEqual([]);
  });
});
