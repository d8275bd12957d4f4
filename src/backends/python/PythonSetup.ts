import type { Logger } from "pino";
import { ServiceUnavailableError } from "../../core/errors.js";
import { setupPython } from "../../native/setupPython.js";
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
 * The daemon's one automatic venv setup: started by the first Python-engine model that finds no interpreter, shared
 * by every other, its progress logged. A failure is kept (and reported) until a retry after the cooldown. `close`
 * stops a setup in progress (its whole process group) and refuses new ones: the daemon never leaves pip running.
 */
export class PythonSetup {
  private state: PythonSetupState | null = null;
  private failedAt = 0;
  private readonly lifetime = new AbortController();
  private running: Promise<void> | null = null;

  constructor(private readonly options: PythonSetupOptions) {}

  /** The setup's state, starting it when there is none (or the last one failed long enough ago). `engine` is for the log. */
  start(engine = "Python"): PythonSetupState {
    const now = this.options.now?.() ?? Date.now();
    if (this.state?.error !== undefined && now - this.failedAt >= (this.options.retryAfterMs ?? 60_000)) this.state = null;
    if (this.state) return this.state;
    const state: PythonSetupState = {};
    this.state = state;
    if (this.lifetime.signal.aborted) {
      state.error = this.lifetime.signal.reason;
      return state;
    }
    const log = this.options.logger.child({ setup: "python" });
    log.info(`no Python environment for the ${engine} engine: creating one (native/setup-python.sh)`);
    this.running = setupPython({
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
        this.failedAt = this.options.now?.() ?? Date.now();
        if (this.lifetime.signal.aborted) log.info("Python environment setup stopped");
        else log.error({ err }, "Python environment setup failed"); // PythonSetupError carries pip's last lines
      },
    );
    return state;
  }

  /** Stops a setup in progress and resolves once its processes have exited. Idempotent; never rejects. */
  async close(): Promise<void> {
    this.lifetime.abort(new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" }));
    await this.running;
  }
}
