// Child processes the bench starts itself (llama-server used directly). Every one is stopped: by `stop()` in the
// suite's finally (SIGTERM, then SIGKILL after a grace period), by `killAllChildren()` on SIGINT/SIGTERM or exit,
// and on Linux by the kernel if the bench itself dies (setpriv --pdeathsig KILL, as the daemon runs its children).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";

const SETPRIV = "/usr/bin/setpriv";
const STOP_GRACE_MS = 10_000;

export interface TrackedChild {
  pid: number;
  /** The last lines of its stdout and stderr, for error messages. */
  output(): string;
  /** True once the child has exited. */
  readonly exited: boolean;
  exitPromise: Promise<number | null>;
  /** SIGTERM, SIGKILL after a grace period; resolves with the exit code (null after a signal). */
  stop(): Promise<number | null>;
}

const live = new Set<ChildProcess>();

/** SIGKILL every child still running (sync, for exit handlers). */
function killAllChildren(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.exit(130);
    });
  }
}

export function spawnTracked(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): TrackedChild {
  installHandlers();
  const viaSetpriv = process.platform === "linux" && existsSync(SETPRIV);
  // setpriv execs the command: the pid stays the same, and the kernel SIGKILLs it if this process dies.
  const child = viaSetpriv
    ? spawn(SETPRIV, ["--pdeathsig", "KILL", "--", file, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const lines: string[] = [];
  const keep = (data: string) => {
    for (const line of data.split("\n")) if (line.trim()) lines.push(line);
    while (lines.length > 60) lines.shift();
  };
  // Always drained: a full pipe would stall the child's logging and, with it, its work.
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  let exited = false;
  const exitPromise = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      exited = true;
      live.delete(child);
      resolve(code);
    });
    child.once("error", (err) => {
      keep(`spawn error: ${err.message}`);
      exited = true;
      live.delete(child);
      resolve(null);
    });
  });
  return {
    pid: child.pid ?? -1,
    output: () => lines.join("\n"),
    get exited() {
      return exited;
    },
    exitPromise,
    async stop() {
      if (exited) return exitPromise;
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), STOP_GRACE_MS)));
      const result = await Promise.race([exitPromise, hung]);
      clearTimeout(timer);
      if (result !== "hung") return result;
      child.kill("SIGKILL");
      return exitPromise;
    },
  };
}

/** Polls `url` until it answers 200, the child exits, or the deadline passes. */
export async function waitHealthy(child: TrackedChild, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(`exited before it was healthy\n--- output ---\n${child.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`not healthy within ${timeoutMs} ms\n--- output ---\n${child.output()}`);
}

/** Direct children of `pid` (Linux /proc; empty elsewhere). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    /* gone, or not Linux */
  }
  return out;
}

/** The command line of a process, NUL-separated arguments joined by spaces; null once it is gone. */
export function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return null;
  }
}

/**
 * SIGKILL a process that should have exited by now (a daemon's child left behind); true if it was alive. Only if
 * its command line still contains `expect`, so a recycled pid is never hit.
 */
export function killIfAlive(pid: number, expect: string): boolean {
  if (!commandLine(pid)?.includes(expect)) return false;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* raced with its exit */
  }
  return true;
}
