import { join } from "node:path";
import { TabAgentError } from "../core/errors.js";
import { LineSplitter } from "../supervisor/LineSplitter.js";
import { describeExit } from "../supervisor/errors.js";
import type { ProcessRegistry } from "../supervisor/ProcessRegistry.js";
import type { Spawner } from "../supervisor/Spawner.js";
import { projectRoot } from "./projectRoot.js";
import { SETUP_COMMAND } from "./findPythonEnv.js";

/** Which venv: the transformers sidecar's (default) or the LiteRT engine's (its own, without torch). */
export type PythonVenvKind = "transformers" | "litert";

interface SetupPythonOptions {
  variant?: "cpu" | "cuda";
  /** Default "transformers". */
  venv?: PythonVenvKind;
  dev?: boolean;
  dataDir?: string;
  env: NodeJS.ProcessEnv;
  /** Each progress line of the script and pip (they write to stderr). */
  onLine?: (line: string) => void;
  /** Stops the setup: SIGTERM to its whole process group (the script, venv, pip), SIGKILL after `stopGraceMs`. */
  signal?: AbortSignal;
  /** Default 5 000. */
  stopGraceMs?: number;
  /** Where the running setup is recorded, so the daemon's exit handlers kill it too. Default: none. */
  registry?: ProcessRegistry;
  /** Default: createExecaSpawner() (own process group; setpriv --pdeathsig KILL where available), as for engines. */
  spawn?: Spawner;
}

/**
 * Why a setup failed. The message says what failed and what to run; pip's last lines are in `lastLines` (the CLI
 * has shown them as they came, the daemon logs them): a daemon's client, who may be remote, never sees them.
 */
class PythonSetupError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(
    reason: string,
    readonly lastLines: string[],
  ) {
    super(`${reason}. Fix the cause (the setup's output says what it is) and run \`${SETUP_COMMAND}\` again.`, { code: "python_setup_failed" });
  }
}

/**
 * Runs native/setup-python.sh (the one implementation CI, the Dockerfile and `tabagent setup python` share) and
 * resolves with the venv's interpreter. Instant when a complete venv for these requirements exists. The script
 * leads its own process group, so a stop reaches pip and the interpreter building the venv, not only the script.
 */
export async function setupPython(options: SetupPythonOptions): Promise<string> {
  options.signal?.throwIfAborted();
  const spawn = options.spawn ?? (await import("../supervisor/createExecaSpawner.js")).createExecaSpawner();
  const args = [
    "--print-path",
    ...(options.venv === "litert" ? ["--engine", "litert"] : []),
    ...(options.dev ? ["--dev"] : []),
    ...(options.variant ? [`--${options.variant}`] : []),
  ];
  if (options.dataDir) args.push("--data-dir", options.dataDir);
  // The environment as given (keys set to undefined are removed), not merged into the daemon's.
  const env = Object.fromEntries(Object.keys(process.env).map((k) => [k, undefined])) as Record<string, string | undefined>;
  const child = spawn({ file: join(projectRoot(), "native", "setup-python.sh"), args, env: { ...env, ...options.env } });
  options.registry?.add(child);
  const last: string[] = [];
  const lines = new LineSplitter((line) => {
    if (!line.trim()) return;
    last.push(line);
    if (last.length > 15) last.shift();
    options.onLine?.(line);
  });
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => lines.push(chunk));
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    child.killGroup("SIGTERM");
    killTimer = setTimeout(() => child.killGroup("SIGKILL"), options.stopGraceMs ?? 5_000);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let exit;
  try {
    exit = await child.exited;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);
    child.killGroup("SIGKILL"); // whatever the script left behind in its group
    options.registry?.delete(child);
  }
  lines.flush();
  if (options.signal?.aborted) throw options.signal.reason;
  if (exit.error || exit.code !== 0) {
    if (exit.error) last.push(exit.error.message);
    throw new PythonSetupError(`Setting up the Python environment failed: native/setup-python.sh ${describeExit(exit)}`, last);
  }
  const venv = stdout.trim().split("\n").at(-1) ?? "";
  return join(venv, "bin", "python");
}
