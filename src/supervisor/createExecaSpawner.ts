import { existsSync } from "node:fs";
import { execa } from "execa";
import type { ChildHandle, CommandSpec, ExitInfo, Spawner } from "./Spawner.js";

interface ExecaSpawnerOptions {
  /**
   * Path to util-linux `setpriv`, used to run every child as `setpriv --pdeathsig KILL -- file args...` so that the
   * kernel kills the child when the daemon dies, even by SIGKILL. `null` turns this off.
   * Default: `/usr/bin/setpriv` on Linux when it exists (checked once, when the spawner is created), else `null`.
   *
   * PR_SET_PDEATHSIG fires when the *thread* that forked the child exits. libuv forks from the thread that calls
   * `spawn`, so spawn from the main thread (not from a worker_thread that may end before the child should).
   */
  setprivPath?: string | null;
  /** How long to wait for the output pipes to close after the child exited (a grandchild may hold them). Default 200. */
  outputDrainMs?: number;
}

function defaultSetpriv(): string | null {
  return process.platform === "linux" && existsSync("/usr/bin/setpriv") ? "/usr/bin/setpriv" : null;
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ESRCH" || code === "EPERM";
}

/**
 * The real spawner: execa, no shell, `detached: true` so the child leads its own process group (stop and the exit
 * handlers signal the whole group), stdin ignored, stdout/stderr piped unbuffered for the ring buffer.
 * (`cleanup: true` is passed, but execa skips it for detached children; ProcessRegistry + installExitHandlers and
 * setpriv's pdeathsig are what make children die with the daemon.)
 */
export function createExecaSpawner(options: ExecaSpawnerOptions = {}): Spawner {
  const setpriv = options.setprivPath !== undefined ? options.setprivPath : defaultSetpriv();
  const drainMs = options.outputDrainMs ?? 200;

  return (command: CommandSpec): ChildHandle => {
    const [file, args] = setpriv ? [setpriv, ["--pdeathsig", "KILL", "--", command.file, ...command.args]] : [command.file, [...command.args]];
    const subprocess = execa(file, args, {
      detached: true,
      cleanup: true,
      shell: false,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
      windowsHide: true,
      ...(command.env ? { env: command.env } : {}),
      ...(command.cwd ? { cwd: command.cwd } : {}),
    });
    // reject: false resolves even on failure; this only guards against an unexpected rejection.
    subprocess.catch(() => undefined);
    const pid = subprocess.pid;

    const exited = new Promise<ExitInfo>((resolve) => {
      let exitInfo: ExitInfo | null = null;
      subprocess.once("error", (error: Error) => {
        // Only a failed spawn matters here: a running child reports its end through "exit".
        if (subprocess.pid === undefined) resolve({ code: null, signal: null, error });
      });
      subprocess.once("exit", (code, signal) => {
        exitInfo = { code, signal };
        // "close" follows once the pipes are drained; a grandchild that inherited them could hold them open.
        setTimeout(() => resolve(exitInfo!), drainMs).unref();
      });
      subprocess.once("close", (code, signal) => resolve(exitInfo ?? { code, signal }));
    });

    return {
      pid,
      stdout: subprocess.stdout,
      stderr: subprocess.stderr,
      exited,
      killGroup(signal: NodeJS.Signals): void {
        if (pid === undefined) return;
        try {
          process.kill(-pid, signal);
        } catch (err) {
          if (!isGone(err)) throw err;
        }
      },
    };
  };
}
