import { delimiter, join } from "node:path";
import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { EngineUnavailableError, ServiceUnavailableError, TabAgentError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import { findPythonEnv, missingPythonHelp } from "../../native/findPythonEnv.js";
import { projectRoot } from "../../native/projectRoot.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { ChildEndpoint } from "../childServer/ChildEndpoint.js";
import { ChildServerBackend } from "../childServer/ChildServerBackend.js";
import type { PythonSetup } from "./PythonSetup.js";

/** What every Python engine needs from the daemon. Engines add their own settings (threads, a chat template, ...). */
export interface PythonSidecarBackendOptions {
  logger: Logger;
  clock: Clock;
  processes: ProcessRegistry;
  env: NodeJS.ProcessEnv;
  parallel: number;
  /** config `python`: the interpreter, before the lookup order. */
  pythonPath?: string;
  dataDir?: string;
  /** Creates the venv on first use when none exists (one for the daemon, shared by every Python model); null: never. */
  setup: PythonSetup | null;
  stallTimeoutMs: number;
  /** Import the framework and load the weights; a large model on a slow disk takes minutes. Default 600 000. */
  startTimeoutMs?: number;
  /**
   * How the daemon reaches the sidecar: a private Unix socket (default; TCP on Windows) or a 127.0.0.1 port, with a
   * per-start key either way.
   */
  transport?: "unix" | "tcp";
}

/**
 * A model served by a Python package under native/python (`python -m <module>`), one supervised child per model.
 * Everything but the package and its arguments is the same for every Python engine and lives here: the interpreter
 * lookup (config `python`, TABAGENT_PYTHON, the data folder's venv), the automatic setup on first use (503
 * `engine_installing` with Retry-After while it runs), supervision (ChildServerBackend) and the private endpoint:
 * the module gets `--socket PATH` (or `--port N` where there are no Unix sockets) and its key in TABAGENT_SIDECAR_KEY,
 * and must answer only requests that carry that key and the daemon's Host, and none with an Origin
 * (`tabagent_sidecar.server` does all three for any engine object).
 *
 * A subclass names the engine and the module, builds the module's own arguments and may refuse models up front.
 */
export abstract class PythonSidecarBackend extends ChildServerBackend {
  readonly parallel: number;
  /** The engine's name in the process name, logs and errors (`transformers`). */
  protected abstract readonly engine: string;
  /** The package run as `python -m <module>` (`tabagent_sidecar`). */
  protected abstract readonly module: string;

  constructor(
    descriptor: ModelDescriptor,
    protected readonly options: PythonSidecarBackendOptions,
  ) {
    super(descriptor);
    this.parallel = options.parallel;
  }

  /** The module's arguments after `-m <module>`, without where it listens (added here). */
  protected abstract moduleArgs(): string[];

  /**
   * Where Python finds the module and `tabagent_sidecar` (whose `serve` and `server` every engine reuses): the
   * child's PYTHONPATH, the first also its working folder. Default: native/python.
   */
  protected packageDirs(): string[] {
    return [join(projectRoot(), "native", "python")];
  }

  /** Refusals that need no Python (a 400 at once rather than a failed start). Default: none. */
  protected checkServable(): void {}

  /**
   * The level of each line the child writes. Default: lines starting `[sidecar]` at info (`[sidecar] error` and
   * `[sidecar] cannot` at warn), the rest (library chatter, progress bars) at debug.
   */
  protected outputLevel(line: string): "debug" | "info" | "warn" {
    return line.startsWith("[sidecar] error") || line.startsWith("[sidecar] cannot") ? "warn" : line.startsWith("[sidecar]") ? "info" : "debug";
  }

  /** The interpreter: found, or being set up (503 `engine_installing`), or missing (503 `engine_unavailable`). */
  private async python(signal: AbortSignal): Promise<string> {
    const { env, pythonPath, dataDir, setup } = this.options;
    const lookup = await findPythonEnv({ configPath: pythonPath, env, dataDir });
    if (lookup.python) return lookup.python;
    // An interpreter the user named that does not exist is theirs to fix; setting up another would hide that.
    const explicit = lookup.tried.some((t) => t.source !== "data-dir");
    if (setup === null || explicit) throw new EngineUnavailableError(this.descriptor.id, this.engine, missingPythonHelp(lookup, this.engine));
    const state = setup.start(this.engine);
    if (state.done) return state.done;
    if (state.error)
      throw state.error instanceof TabAgentError
        ? state.error
        : new EngineUnavailableError(this.descriptor.id, this.engine, "setting up its Python environment failed (see the daemon log)");
    signal.throwIfAborted();
    throw new ServiceUnavailableError(
      `The Python environment for '${this.descriptor.id}' is being set up (${state.lastLine ?? "starting"}); this takes a few minutes the first time.`,
      { code: "engine_installing", headers: { "retry-after": "30" } },
    );
  }

  private listenArgs(endpoint: ChildEndpoint): string[] {
    return endpoint.socketPath !== null ? ["--socket", endpoint.socketPath] : ["--port", String(endpoint.port)];
  }

  async load(signal: AbortSignal): Promise<void> {
    this.checkServable();
    const python = await this.python(signal);
    const packages = this.packageDirs();
    await this.startChild(
      () => ({
        name: `${this.engine}:${this.descriptor.id}`,
        command: (endpoint) => ({
          file: python,
          args: ["-m", this.module, ...this.moduleArgs(), ...this.listenArgs(endpoint)],
          cwd: packages[0],
          // The key in the environment, where only the daemon's user (through /proc) can read it; never in argv.
          env: { PYTHONPATH: packages.join(delimiter), PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1", TABAGENT_SIDECAR_KEY: endpoint.key },
        }),
        logger: this.options.logger,
        clock: this.options.clock,
        registry: this.options.processes,
        startTimeoutMs: this.options.startTimeoutMs ?? 600_000,
        healthIntervalMaxMs: 250,
        outputLevel: (line) => this.outputLevel(line),
      }),
      { name: this.engine, logger: this.options.logger, stallTimeoutMs: this.options.stallTimeoutMs, transport: this.options.transport },
      signal,
    );
  }
}
