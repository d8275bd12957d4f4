import type { Logger } from "pino";
import type { Backend } from "../backends/Backend.js";
import type { GgufProbe } from "../backends/llamacpp/GgufProbe.js";
import type { LlamaProvider } from "../backends/llamacpp/LlamaProvider.js";
import type { PythonSetup } from "../backends/python/PythonSetup.js";
import type { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import type { Config } from "../config/configSchema.js";
import type { Clock } from "../core/Clock.js";
import type { EngineName, ModelFormatName } from "../core/detectionSchema.js";
import type { ModelDescriptor } from "../core/types.js";
import type { ProcessRegistry } from "../supervisor/ProcessRegistry.js";
import type { Capabilities } from "./capabilities.js";
import type { ModelSettings } from "./resolveModelSettings.js";

/** Daemon-wide objects engines share: one llama.cpp binding, one probe cache, one upstream list, one Python setup. */
export interface EngineServices {
  llama: LlamaProvider;
  ggufProbe: GgufProbe;
  upstreams: UpstreamCatalog;
  pythonSetup: PythonSetup | null;
}

/** Everything a factory gets besides the model: its resolved settings and the daemon's shared parts. */
export interface EngineDeps {
  settings: ModelSettings;
  config: Config;
  logger: Logger;
  clock: Clock;
  processes: ProcessRegistry;
  env: NodeJS.ProcessEnv;
  services: EngineServices;
}

export type EngineFactory = (descriptor: ModelDescriptor, deps: EngineDeps) => Backend;

/** One engine, described once: detection, routing, `/v1/models`, `doctor`, config and the API all read this. */
export interface EngineSpec {
  name: EngineName;
  /** One line for `doctor` and docs. */
  summary: string;
  /** Formats it serves. Among engines serving the same format, the one listed first in ENGINES is the default. */
  formats: readonly ModelFormatName[];
  /** Why detection picks it (shown by `detect` and `/v1/models` as engine_reason). */
  why: string;
  /** What to do when a model needs it and this daemon cannot run it (the 503 engine_unavailable message). */
  install: string;
  capabilities: Capabilities;
  /**
   * Loads the engine's code (its backend module, and with it any native binding) and returns the factory that builds
   * a model's backend; null for an engine detected but not runnable in this version. Loaded by the daemon at start,
   * so detection and the CLI read this table without loading any engine.
   */
  load: (() => Promise<EngineFactory>) | null;
}
