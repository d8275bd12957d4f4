import { join } from "node:path";
import { TabAgentError } from "../core/errors.js";
import { LineSplitter } from "../supervisor/LineSplitter.js";
import { projectRoot } from "./projectRoot.js";
import { SETUP_COMMAND } from "./findPythonEnv.js";

export interface SetupPythonOptions {
  variant?: "cpu" | "cuda";
  dev?: boolean;
  dataDir?: string;
  env: NodeJS.ProcessEnv;
  /** Each progress line of the script and pip (they write to stderr). */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

/** Why a setup failed, with the script's last lines: the user sees pip's reason, not only an exit code. */
export class PythonSetupError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  constructor(reason: string, readonly lastLines: string[]) {
    super(`${reason}${lastLines.length ? `:\n${lastLines.join("\n")}` : ""}\nFix the cause and run \`${SETUP_COMMAND}\` again.`, { code: "python_setup_failed" });
  }
}

/**
 * Runs native/setup-python.sh (the one implementation CI, the Dockerfile and `tabagent setup python` share) and
 * resolves with the venv's interpreter. Instant when a complete venv for these requirements exists.
 */
export async function setupPython(options: SetupPythonOptions): Promise<string> {
  const { execa } = await import("execa");
  const args = ["--print-path", ...(options.dev ? ["--dev"] : []), ...(options.variant ? [`--${options.variant}`] : [])];
  if (options.dataDir) args.push("--data-dir", options.dataDir);
  const child = execa(join(projectRoot(), "native", "setup-python.sh"), args, {
    env: options.env,
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    cancelSignal: options.signal,
    forceKillAfterDelay: 5_000,
  });
  const last: string[] = [];
  const lines = new LineSplitter((line) => {
    if (!line.trim()) return;
    last.push(line);
    if (last.length > 15) last.shift();
    options.onLine?.(line);
  });
  child.stderr?.on("data", (chunk: Buffer) => lines.push(chunk));
  const result = await child;
  lines.flush();
  if (options.signal?.aborted) throw options.signal.reason;
  if (result.exitCode !== 0) {
    throw new PythonSetupError(`setting up the Python environment failed (exit ${result.exitCode ?? result.signal})`, last);
  }
  const venv = String(result.stdout).trim().split("\n").at(-1) ?? "";
  return join(venv, "bin", "python");
}
