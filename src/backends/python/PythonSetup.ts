import type { Logger } from "pino";
import { ServiceUnavailableError } from "../../core/errors.js";
import { setupPython, type PythonVenvKind } from "../../native/setupPython.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { Spawner } from "../../supervisor/Spawner.js";

export interface PythonSetupState {
  /** The interpreter, once the venv is ready. */
  done?: string;
  error?: unknown;
  /** The latest progress line, for the 503 that requests get meanwhile. */
  lastLine?: string;
}

export interface PythonSetupOptions {
  env: NodeJS.ProcessEnv;
  dataDir?: string;
  logger: Logger;
  /** Where the running setup is recorded, so the CLI's exit handlers kill it if the daemon dies. */
  processes?: ProcessRegistry;
  /** A failed setup is reported until this long has passed; then the next request tries again. Default 60 000. */
  retryAfterMs?: number;
  now?: () => number;
  /** Default: createExecaSpawner(). */
  spawn?: Spawner;
}

/**
 * The daemon's automatic venv setups, one per venv kind (the transformers sidecar's; the LiteRT engine's): started by
 * the first model of that kind that finds no interpreter, shared by every other, its progress logged. A failure is kept (and reported) until a retry after the cooldown. `close`
 * stops a setup in progress (its whole process group) and refuses new ones: the daemon never leaves pip running.
 */
export class PythonSetup {
  private readonly states = new Map<PythonVenvKind, { state: PythonSetupState; failedAt: number }>();
  private readonly lifetime = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly options: PythonSetupOptions) {}

  /**
   * The setup's state for one venv kind, starting it when there is none (or the last one failed long enough ago).
   * `engine` is for the log.
   */
  start(engine = "Python", venv: PythonVenvKind = "transformers"): PythonSetupState {
    const now = this.options.now?.() ?? Date.now();
    const current = this.states.get(venv);
    if (current?.state.error !== undefined && now - current.failedAt >= (this.options.retryAfterMs ?? 60_000)) this.states.delete(venv);
    const kept = this.states.get(venv);
    if (kept) return kept.state;
    const state: PythonSetupState = {};
    const entry = { state, failedAt: 0 };
    this.states.set(venv, entry);
    if (this.lifetime.signal.aborted) {
      state.error = this.lifetime.signal.reason;
      return state;
    }
    const log = this.options.logger.child({ setup: venv === "transformers" ? "python" : `python-${venv}` });
    log.info(`no Python environment for the ${engine} engine: creating one (native/setup-python.sh${venv === "transformers" ? "" : ` --engine ${venv}`})`);
    const running = setupPython({
      venv,
      env: this.options.env,
      dataDir: this.options.dataDir,
      signal: this.lifetime.signal,
      registry: this.options.processes,
      spawn: this.options.spawn,
      onLine: (line) => {
        state.lastLine = line.slice(0, 200);
        log.info(line);
      },
    }).then(
      (python) => {
        state.done = python;
        log.info({ python }, "Python environment ready");
      },
      (err: unknown) => {
        state.error = err;
        entry.failedAt = this.options.now?.() ?? Date.now();
        if (this.lifetime.signal.aborted) log.info("Python environment setup stopped");
        else log.error({ err }, "Python environment setup failed"); // PythonSetupError carries pip's last lines
      },
    );
    this.running.add(running);
    void running.finally(() => this.running.delete(running));
    return state;
  }

  /** Stops a setup in progress and resolves once its processes have exited. Idempotent; never rejects. */
  async close(): Promise<void> {
    this.lifetime.abort(new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" }));
    await Promise.all([...this.running]);
  }
}
