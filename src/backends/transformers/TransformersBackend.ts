import { join } from "node:path";
import type { Logger } from "pino";
import type { Clock } from "../../core/Clock.js";
import { EngineUnavailableError, ModelNotServableError, ServiceUnavailableError, TabAgentError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import { findPythonEnv, missingPythonHelp } from "../../native/findPythonEnv.js";
import { projectRoot } from "../../native/projectRoot.js";
import type { ProcessRegistry } from "../../supervisor/ProcessRegistry.js";
import type { ChildEndpoint } from "../childServer/ChildEndpoint.js";
import { ChildServerBackend } from "../childServer/ChildServerBackend.js";
import type { PythonSetup } from "./PythonSetup.js";

export interface TransformersBackendOptions {
  logger: Logger;
  clock: Clock;
  processes: ProcessRegistry;
  env: NodeJS.ProcessEnv;
  /** torch CPU threads. */
  threads: number;
  parallel: number;
  /** config `python`: the interpreter, before the lookup order. */
  pythonPath?: string;
  dataDir?: string;
  /** Creates the venv on first use when none exists (shared by every transformers model); null: never. */
  setup: PythonSetup | null;
  stallTimeoutMs: number;
  /** A Jinja chat template used instead of the tokenizer's (config `chatTemplate`). */
  chatTemplate?: string;
  /** Import torch + load the weights; a large model on a slow disk takes minutes. Default 600 000. */
  startTimeoutMs?: number;
  /**
   * How the daemon reaches the sidecar: a private Unix socket (default; TCP on Windows) or a 127.0.0.1 port, with a
   * per-start key either way.
   */
  transport?: "unix" | "tcp";
}

/**
 * A Hugging Face transformers folder (SafeTensors) served by the Python sidecar (native/python/tabagent_sidecar):
 * one supervised child per model, speaking a subset of the OpenAI API on a private Unix socket (`--socket`), proxied
 * like llama-server. It answers only requests with the start's key (TABAGENT_SIDECAR_KEY in its environment) and the
 * daemon's Host header, and none with an Origin header.
 */
export class TransformersBackend extends ChildServerBackend {
  readonly parallel: number;
  readonly returnsTokenIds = true;

  constructor(
    descriptor: ModelDescriptor,
    private readonly options: TransformersBackendOptions,
  ) {
    super(descriptor);
    this.parallel = options.parallel;
  }

  /** Refusals that need no Python: the daemon answers them at once, and the sidecar would refuse them too. */
  private checkServable(): void {
    const { detection, engineOptions, id } = this.descriptor;
    const custom = detection.warnings.find((w) => w.startsWith("needs custom code"));
    if (custom && !engineOptions?.trustRemoteCode) {
      throw new ModelNotServableError(id, `it ${custom}; set trustRemoteCode: true in its config entry once you have read that code`);
    }
    if (detection.format === "pytorch") {
      throw new ModelNotServableError(id, "its weights are pickle files; the transformers engine loads safetensors only (pickle runs arbitrary code on load)");
    }
  }

  private async python(signal: AbortSignal): Promise<string> {
    const { env, pythonPath, dataDir, setup } = this.options;
    const lookup = await findPythonEnv({ configPath: pythonPath, env, dataDir });
    if (lookup.python) return lookup.python;
    const explicit = lookup.tried.some((t) => t.source !== "data-dir");
    if (setup === null || explicit) throw new EngineUnavailableError(this.descriptor.id, "transformers", missingPythonHelp(lookup));
    const state = setup.start();
    if (state.done) return state.done;
    if (state.error) throw state.error instanceof TabAgentError ? state.error : new EngineUnavailableError(this.descriptor.id, "transformers", String(state.error));
    signal.throwIfAborted();
    throw new ServiceUnavailableError(
      `The Python environment for '${this.descriptor.id}' is being set up (${state.lastLine ?? "starting"}); this takes a few minutes the first time.`,
      { code: "engine_installing", headers: { "retry-after": "30" } },
    );
  }

  private args(endpoint: ChildEndpoint): string[] {
    const { engineOptions, task, path, id } = this.descriptor;
    return [
      "-m", "tabagent_sidecar",
      "--model", path,
      "--id", id,
      "--task", task === "embeddings" ? "embeddings" : "text-generation",
      ...(endpoint.socketPath !== null ? ["--socket", endpoint.socketPath] : ["--port", String(endpoint.port)]),
      "--threads", String(this.options.threads),
      "--device", engineOptions?.device ?? "auto",
      "--dtype", engineOptions?.dtype ?? "auto",
      ...(engineOptions?.trustRemoteCode ? ["--trust-remote-code"] : []),
      ...(this.options.chatTemplate ? ["--chat-template", this.options.chatTemplate] : []),
    ];
  }

  async load(signal: AbortSignal): Promise<void> {
    this.checkServable();
    const python = await this.python(signal);
    const sidecarDir = join(projectRoot(), "native", "python");
    await this.startChild(
      () => ({
        name: `transformers:${this.descriptor.id}`,
        command: (endpoint) => ({
          file: python,
          args: this.args(endpoint),
          cwd: sidecarDir,
          // The key in the environment, where only the daemon's user (through /proc) can read it; never in argv.
          env: { PYTHONPATH: sidecarDir, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1", TABAGENT_SIDECAR_KEY: endpoint.key },
        }),
        logger: this.options.logger,
        clock: this.options.clock,
        registry: this.options.processes,
        startTimeoutMs: this.options.startTimeoutMs ?? 600_000,
        healthIntervalMaxMs: 250,
        // The sidecar's own lines ("[sidecar] ...") are few and matter; library chatter and progress bars stay at debug.
        outputLevel: (line) => (line.startsWith("[sidecar] error") || line.startsWith("[sidecar] cannot") ? "warn" : line.startsWith("[sidecar]") ? "info" : "debug"),
      }),
      { name: "transformers", logger: this.options.logger, stallTimeoutMs: this.options.stallTimeoutMs, transport: this.options.transport },
      signal,
    );
  }
}
