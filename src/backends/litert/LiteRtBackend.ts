import { delimiter, join } from "node:path";
import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { liteRtDetails } from "../../core/detectionSchema.js";
import { EngineUnavailableError, ModelLoadError, ModelNotServableError, ServiceUnavailableError, TabAgentError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import { defaultDataDir } from "../../native/findPythonEnv.js";
import { projectRoot } from "../../native/projectRoot.js";
import { ProcessStartError } from "../../supervisor/errors.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { RuntimeInfo } from "../Backend.js";
import type { ChildEndpoint } from "../childServer/ChildEndpoint.js";
import { ChildServerBackend } from "../childServer/ChildServerBackend.js";
import type { PythonSetup } from "../python/PythonSetup.js";
import { findLitertPython, LITERT_SETUP_COMMAND } from "../../native/findLitertPython.js";

export interface LiteRtBackendOptions {
  logger: Logger;
  clock: Clock;
  processes: ProcessRegistry;
  env: NodeJS.ProcessEnv;
  dataDir?: string;
  /** Creates the LiteRT venv on first use when none exists; null: never. */
  setup: PythonSetup | null;
  stallTimeoutMs: number;
  /** CPU threads; 0: the runtime's default. */
  threads: number;
  /** A Jinja chat template used instead of the bundle's (config `chatTemplate`). */
  chatTemplate?: string;
  startTimeoutMs?: number;
  transport?: "unix" | "tcp";
}

/** The accelerator a model's `device` asks for: the CPU unless it names a GPU (LiteRT's GPU delegate). */
export function liteRtAccelerator(device: string | undefined): "cpu" | "gpu" {
  return device === undefined || device === "auto" || device === "cpu" ? "cpu" : "gpu";
}

/**
 * A `.litertlm` or LLM `.task` bundle served by LiteRT-LM (native/python/tabagent_litert) in a supervised child,
 * on the same private HTTP surface as the transformers sidecar (tabagent_sidecar.server; key, socket, Host checks),
 * from its own venv (`tabagent setup litert`, or the automatic setup: 503 `engine_installing` meanwhile).
 * One request at a time: a LiteRT-LM session per request, on one engine.
 */
export class LiteRtBackend extends ChildServerBackend {
  readonly parallel = 1;
  private loadedOn: "cpu" | "gpu" | null = null;

  constructor(
    descriptor: ModelDescriptor,
    private readonly options: LiteRtBackendOptions,
  ) {
    super(descriptor);
  }

  /** Refusals that need no Python, from detection's facts: the child would refuse them too, later. */
  private checkServable(): void {
    const { id, detection } = this.descriptor;
    const d = liteRtDetails(detection);
    if (!d) throw new ModelNotServableError(id, "it is not a LiteRT model");
    if (d.container === "tflite") {
      throw new ModelNotServableError(
        id,
        "a bare .tflite file has no tokenizer or metadata; the LiteRT engine serves .litertlm bundles (write one with litert-lm-builder or litert-torch) and LLM .task bundles",
      );
    }
    if (d.container === "task" && d.bundle?.llm === false) {
      throw new ModelNotServableError(id, `its .task bundle holds no LLM prefill/decode model (entries: ${(d.bundle.models ?? []).slice(0, 4).join(", ")})`);
    }
  }

  private async python(signal: AbortSignal): Promise<string> {
    const { env, dataDir, setup } = this.options;
    const lookup = await findLitertPython({ env, dataDir });
    if (lookup.python) return lookup.python;
    const where = lookup.tried.map((t) => `${t.path}: ${t.problem}`).join("; ");
    const help = `no Python environment for the LiteRT engine (${where}). Run \`${LITERT_SETUP_COMMAND}\` (or set TABAGENT_LITERT_PYTHON to a Python with native/python/requirements-litert.txt)`;
    if (setup === null || lookup.explicit) throw new EngineUnavailableError(this.descriptor.id, "litert", help);
    const state = setup.start("litert", "litert");
    if (state.done) return state.done;
    if (state.error)
      throw state.error instanceof TabAgentError
        ? state.error
        : new EngineUnavailableError(this.descriptor.id, "litert", "setting up its Python environment failed (see the daemon log)");
    signal.throwIfAborted();
    throw new ServiceUnavailableError(
      `The LiteRT environment for '${this.descriptor.id}' is being set up (${state.lastLine ?? "starting"}); this takes a minute the first time.`,
      { code: "engine_installing", headers: { "retry-after": "30" } },
    );
  }

  /** The bundle itself: a model given as a folder names its primary file in detection's details. */
  private bundlePath(): string {
    const { path, detection } = this.descriptor;
    const primary = liteRtDetails(detection)?.primaryFile;
    return primary && !path.endsWith(primary) ? join(path, primary) : path;
  }

  private moduleArgs(accelerator: "cpu" | "gpu"): string[] {
    const { id } = this.descriptor;
    const path = this.bundlePath();
    const cacheDir = join(this.options.dataDir ?? defaultDataDir(this.options.env), "cache", "litert");
    return [
      "--model",
      path,
      "--id",
      id,
      "--backend",
      accelerator,
      "--threads",
      String(this.options.threads),
      // The runtime writes its weight cache next to the model unless told otherwise: never in the model's folder.
      "--cache-dir",
      cacheDir,
      ...(this.options.chatTemplate ? ["--chat-template", this.options.chatTemplate] : []),
    ];
  }

  private static listenArgs(endpoint: ChildEndpoint): string[] {
    return endpoint.socketPath !== null ? ["--socket", endpoint.socketPath] : ["--port", String(endpoint.port)];
  }

  /**
   * The child's own words for a failed load (a refused bundle, the runtime's status), so the client sees why rather
   * than "see the daemon log"; null when it said nothing usable.
   */
  static loadFailure(lines: readonly string[]): string | null {
    const said = lines.find((l) => l.startsWith("[sidecar] cannot load the model: "))?.slice("[sidecar] cannot load the model: ".length);
    const runtime = lines.map((l) => /Failed to create engine: (.*)$/.exec(l)?.[1]).find((m) => m !== undefined);
    if (!said && !runtime) return null;
    return [said, runtime && !said?.includes(runtime) ? `LiteRT-LM: ${runtime}` : null].filter(Boolean).join("; ").slice(0, 1000);
  }

  async load(signal: AbortSignal): Promise<void> {
    try {
      await this.start(signal);
    } catch (err) {
      const why = err instanceof ProcessStartError ? LiteRtBackend.loadFailure(err.lastLines) : null;
      if (why) throw new ModelLoadError(this.descriptor.id, why, err);
      throw err;
    }
  }

  private async start(signal: AbortSignal): Promise<void> {
    this.checkServable();
    const python = await this.python(signal);
    const accelerator = liteRtAccelerator(this.descriptor.engineOptions?.device);
    const packages = join(projectRoot(), "native", "python");
    await this.startChild(
      () => ({
        name: `litert:${this.descriptor.id}`,
        command: (endpoint) => ({
          file: python,
          args: ["-m", "tabagent_litert", ...this.moduleArgs(accelerator), ...LiteRtBackend.listenArgs(endpoint)],
          cwd: packages,
          // The key in the environment, where only the daemon's user (through /proc) can read it; never in argv.
          env: { PYTHONPATH: [packages].join(delimiter), PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1", TABAGENT_SIDECAR_KEY: endpoint.key },
        }),
        logger: this.options.logger,
        clock: this.options.clock,
        registry: this.options.processes,
        startTimeoutMs: this.options.startTimeoutMs ?? 300_000,
        healthIntervalMaxMs: 250,
        outputLevel: (line) => (line.startsWith("[sidecar] error") || line.startsWith("[sidecar] cannot") ? "warn" : line.startsWith("[sidecar]") ? "info" : "debug"),
      }),
      { name: "litert", logger: this.options.logger, stallTimeoutMs: this.options.stallTimeoutMs, transport: this.options.transport },
      signal,
    );
    this.loadedOn = accelerator;
  }

  override async unload(): Promise<void> {
    this.loadedOn = null;
    await super.unload();
  }

  runtimeInfo(): RuntimeInfo | null {
    if (this.loadedOn === null) return null;
    return { accelerator: this.loadedOn, bundle: liteRtDetails(this.descriptor.detection)?.container ?? null };
  }
}
