import type { Logger } from "pino";
import { setupPython } from "../../native/setupPython.js";

export interface PythonSetupState {
  /** The interpreter, once the venv is ready. */
  done?: string;
  error?: unknown;
  /** The latest progress line, for the 503 that requests get meanwhile. */
  lastLine?: string;
}

/**
 * The daemon's one automatic venv setup: started by the first transformers model that finds no Python, shared
 * by every other, its progress logged. A failure is kept (and reported) until `retry` after the cooldown.
 */
export class PythonSetup {
  private state: PythonSetupState | null = null;
  private failedAt = 0;

  constructor(
    private readonly options: { env: NodeJS.ProcessEnv; dataDir?: string; logger: Logger; retryAfterMs?: number; now?: () => number },
  ) {}

  start(): PythonSetupState {
    const now = this.options.now?.() ?? Date.now();
    if (this.state?.error !== undefined && now - this.failedAt >= (this.options.retryAfterMs ?? 60_000)) this.state = null;
    if (this.state) return this.state;
    const state: PythonSetupState = {};
    this.state = state;
    const log = this.options.logger.child({ setup: "python" });
    log.info("no Python environment for the transformers engine: creating one (native/setup-python.sh)");
    setupPython({
      env: this.options.env,
      dataDir: this.options.dataDir,
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
        log.error({ err }, "Python environment setup failed");
      },
    );
    return state;
  }
}
