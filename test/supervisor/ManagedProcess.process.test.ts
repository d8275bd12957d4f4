// Real processes: fakeServer.mjs (a tiny Node HTTP server) as the child, spawned through execa (+ setpriv).
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createExecaSpawner } from "../../src/supervisor/createExecaSpawner.js";
import { ProcessStartError } from "../../src/supervisor/errors.js";
import { findFreePort } from "../../src/supervisor/findFreePort.js";
import { ManagedProcess, type ManagedProcessOptions } from "../../src/supervisor/ManagedProcess.js";
import { ProcessRegistry } from "../../src/supervisor/ProcessRegistry.js";
import type { ChildHandle, Spawner } from "../../src/supervisor/Spawner.js";

const FAKE_SERVER = fileURLToPath(new URL("./fixtures/fakeServer.mjs", import.meta.url));
const PARENT = fileURLToPath(new URL("./fixtures/parentProcess.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HAS_SETPRIV = process.platform === "linux" && existsSync("/usr/bin/setpriv");

/** Alive = exists and is not a zombie (a reparented zombie is dead; this container's init may not reap it). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 3_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

function portAcceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Live children of `pid`, not counting the `ps` that lists them. */
async function childPidsOf(pid: number): Promise<number[]> {
  const { stdout } = await promisify(execFile)("ps", ["-o", "pid=,stat=,comm=", "--ppid", String(pid)]).catch(() => ({ stdout: "" }));
  return stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter(([p, stat, comm]) => p && !stat?.startsWith("Z") && comm !== "ps")
    .map(([p]) => Number(p));
}

// Everything a test starts is killed afterwards, whatever happened.
const handles: ChildHandle[] = [];
const extraPids: number[] = [];
const processes: ManagedProcess[] = [];
const servers: Server[] = [];
const realSpawn = createExecaSpawner();
const trackingSpawn: Spawner = (command) => {
  const handle = realSpawn(command);
  handles.push(handle);
  return handle;
};

afterEach(async () => {
  for (const p of processes.splice(0)) await p.close().catch(() => undefined);
  for (const h of handles.splice(0)) h.killGroup("SIGKILL");
  for (const pid of extraPids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const s of servers.splice(0)) s.close();
});

function make(args: string[] | ((start: number) => string[]), options: Partial<ManagedProcessOptions> = {}): ManagedProcess {
  let starts = 0;
  const proc = new ManagedProcess({
    name: "fake-llama",
    command: (port) => ({
      file: process.execPath,
      args: [FAKE_SERVER, "--port", String(port), ...(typeof args === "function" ? args(starts++) : args)],
    }),
    logger: pino({ level: "silent" }),
    spawn: trackingSpawn,
    startTimeoutMs: 5_000,
    healthIntervalMs: 10,
    healthIntervalMaxMs: 50,
    stopGraceMs: 1_000,
    ...options,
  });
  processes.push(proc);
  return proc;
}

async function httpGet(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return res.text();
}

describe("ManagedProcess with real processes", () => {
  it("starts a child that becomes healthy, tags its output lines, and stops it (process and port gone)", async () => {
    const records: Record<string, unknown>[] = [];
    const logger = pino({ level: "debug" }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
    const proc = make(["--ready-after-ms", "150"], { logger });
    const started = Date.now();
    const { address: port } = await proc.ensureReady();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    const pid = proc.status.pid!;
    expect(await httpGet(port, "/pid")).toBe(String(pid)); // with setpriv, the pid is the server's own (exec)
    expect(proc.status).toMatchObject({ state: "ready", port, pid });
    expect(proc.lastLines()).toContain(`listening on ${port}`);
    expect(records).toContainEqual(expect.objectContaining({ proc: "fake-llama", pid, stream: "stdout", msg: `listening on ${port}` }));

    await proc.stop();
    expect(isAlive(pid)).toBe(false);
    expect(await portAcceptsConnections(port)).toBe(false);
    expect(proc.status.state).toBe("stopped");
  });

  it("a child that exits at once fails the start quickly, its stderr kept for the status, and leaves nothing running", async () => {
    const proc = make(["--exit-immediately", "2", "--stderr", "gguf_init: invalid magic number|llama_load_model_from_file: failed to load model"]);
    const started = Date.now();
    const err = (await proc.ensureReady().catch((e: unknown) => e)) as ProcessStartError;
    expect(Date.now() - started).toBeLessThan(2_000); // fail fast, not at the 5 s deadline
    expect(err).toBeInstanceOf(ProcessStartError);
    expect(err.message).toContain("exited with code 2 while starting");
    expect(err.message).not.toContain("gguf_init");
    expect(proc.status.lastError).toContain("gguf_init: invalid magic number\nllama_load_model_from_file: failed to load model");
    expect(handles.every((h) => h.pid === undefined || !isAlive(h.pid))).toBe(true);
    expect(await childPidsOf(process.pid)).toEqual([]);
  });

  const missingBinaryCases: [string, string | null, RegExp, RegExp][] = [
    ["without setpriv", null, /could not be spawned \(ENOENT\)/, /spawn \/nonexistent\/llama-server ENOENT/],
    ...(HAS_SETPRIV
      ? [
          ["through setpriv", "/usr/bin/setpriv", /exited with code 127 while starting/, /Last output:\nsetpriv: failed to execute \/nonexistent\/llama-server/] as [
            string,
            string,
            RegExp,
            RegExp,
          ],
        ]
      : []),
  ];
  it.each(missingBinaryCases)(
    "a missing executable fails the start at once with the reason (%s); the path only in the status",
    async (_how, setprivPath, message, detail) => {
      const proc = new ManagedProcess({
        name: "fake-llama",
        command: () => ({ file: "/nonexistent/llama-server", args: [] }),
        logger: pino({ level: "silent" }),
        spawn: createExecaSpawner({ setprivPath }),
      });
      processes.push(proc);
      const err = await proc.ensureReady().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProcessStartError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain("/nonexistent");
      expect(proc.status.lastError).toMatch(detail);
      expect(proc.status.state).toBe("stopped");
    },
  );

  it("kills a child that is not healthy by the deadline", async () => {
    const proc = make(["--never-healthy"], { startTimeoutMs: 800 });
    const err = (await proc.ensureReady().catch((e: unknown) => e)) as ProcessStartError;
    expect(err).toBeInstanceOf(ProcessStartError);
    expect(err.message).toMatch(/did not become healthy within 800 ms; its last output is in the daemon log\.$/);
    expect(proc.status.lastError).toMatch(/did not become healthy within 800 ms\. Last output:\nlistening on \d+/);
    const pid = handles.at(-1)!.pid!;
    expect(isAlive(pid)).toBe(false);
    expect(await childPidsOf(process.pid)).toEqual([]);
  });

  it("SIGKILLs a child that ignores SIGTERM once the grace period is over", async () => {
    const proc = make(["--ignore-sigterm"], { stopGraceMs: 300 });
    await proc.ensureReady();
    const pid = proc.status.pid!;
    const started = Date.now();
    await proc.stop();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1_500);
    expect(isAlive(pid)).toBe(false);
    expect(proc.lastLines()).toContain("ignoring SIGTERM");
  });

  it("kills the whole process group: a grandchild (that ignores SIGTERM) dies with its parent", async () => {
    const proc = make(["--grandchild"]);
    await proc.ensureReady();
    await waitFor(() => proc.lastLines().some((l) => l.startsWith("grandchild ")));
    const grandchild = Number(
      proc
        .lastLines()
        .find((l) => l.startsWith("grandchild "))!
        .split(" ")[1],
    );
    extraPids.push(grandchild);
    expect(isAlive(grandchild)).toBe(true);
    await proc.stop();
    expect(await waitFor(() => !isAlive(grandchild), 1_000)).toBe(true);
  });

  it("restarts a crashed child; a caller waiting meanwhile gets the new port", async () => {
    const proc = make((start) => (start === 0 ? ["--crash-after-ms", "300"] : []), {
      restart: { backoffInitialMs: 100 },
    });
    const first = await proc.ensureReady();
    const firstPid = proc.status.pid!;
    expect(await waitFor(() => proc.status.state !== "ready", 2_000)).toBe(true);
    expect(proc.status.lastError).toMatch(/exited with code 3 unexpectedly\. Last output:\n[^]*fatal: simulated crash/);
    const second = await proc.ensureReady();
    expect(second.address).not.toBe(first.address);
    expect(proc.status).toMatchObject({ state: "ready", restarts: 1 });
    expect(proc.status.pid).not.toBe(firstPid);
    expect(isAlive(firstPid)).toBe(false);
    expect(await httpGet(second.address, "/health")).toContain("ok");
  });

  it("tries another port when the child finds its port taken", async () => {
    const blocker = createServer();
    servers.push(blocker);
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = (blocker.address() as { port: number }).port;
    const ports = [taken];
    const proc = make([], { findPort: async () => ports.shift() ?? findFreePort() });
    const { address: port } = await proc.ensureReady();
    expect(port).not.toBe(taken);
    expect(handles).toHaveLength(2);
    expect(isAlive(handles[0]!.pid!)).toBe(false);
  });

  it("50 start/stop cycles leave no process and no listening port behind", async () => {
    const registry = new ProcessRegistry();
    const proc = make([], { registry });
    const seen: { pid: number; port: number }[] = [];
    for (let i = 0; i < 50; i++) {
      const { address: port } = await proc.ensureReady();
      seen.push({ pid: proc.status.pid!, port });
      await proc.stop();
    }
    expect(new Set(seen.map((s) => s.pid)).size).toBe(50);
    expect(seen.filter((s) => isAlive(s.pid))).toEqual([]);
    expect(await childPidsOf(process.pid)).toEqual([]);
    const open = await Promise.all(seen.map((s) => portAcceptsConnections(s.port)));
    expect(open.filter(Boolean)).toHaveLength(0);
    expect(registry.size).toBe(0);
  });
});

describe("children never outlive the daemon", () => {
  /** Starts parentProcess.ts and reads the line with its child's pid. */
  async function startParent(args: string[]): Promise<{ parent: ReturnType<typeof spawn>; childPid: number; exited: Promise<unknown> }> {
    const parent = spawn(process.execPath, ["--import", "tsx", PARENT, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    extraPids.push(parent.pid!);
    const exited = new Promise((r) => parent.once("exit", r));
    let stderr = "";
    parent.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: parent.stdout }).once("line", resolve);
      parent.once("exit", (code) => reject(new Error(`parent exited (${code}) before reporting its child: ${stderr}`)));
    });
    const childPid = (JSON.parse(line) as { pid: number }).pid;
    extraPids.push(childPid);
    return { parent, childPid, exited };
  }

  it.skipIf(!HAS_SETPRIV)("a parent killed with SIGKILL takes its child along (setpriv --pdeathsig)", async () => {
    const { parent, childPid } = await startParent(["--mode", "wait", "--handlers", "off"]);
    expect(isAlive(childPid)).toBe(true);
    expect(readFileSync(`/proc/${childPid}/cmdline`, "utf8")).toContain("fakeServer.mjs"); // setpriv exec'd the server
    parent.kill("SIGKILL");
    expect(await waitFor(() => !isAlive(childPid), 2_000)).toBe(true);
  });

  it("without setpriv the same child would survive (why pdeathsig is needed)", async () => {
    const { parent, childPid } = await startParent(["--mode", "wait", "--handlers", "off", "--setpriv", "off"]);
    parent.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    expect(isAlive(childPid)).toBe(true); // orphaned; afterEach kills it
  });

  it.each([
    ["process.exit()", ["--mode", "exit"]],
    ["an uncaught exception", ["--mode", "throw"]],
    ["SIGTERM with no other handler", ["--mode", "signal"]],
  ])("exit handlers kill the child groups on %s", async (_what, args) => {
    const { parent, childPid, exited } = await startParent([...args, "--setpriv", "off"]);
    if (args[1] === "signal") parent.kill("SIGTERM");
    await exited;
    if (args[1] === "signal") expect(parent.signalCode).toBe("SIGTERM"); // re-raised: it died of the signal
    expect(await waitFor(() => !isAlive(childPid), 1_000)).toBe(true);
  });
});
