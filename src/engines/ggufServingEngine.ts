import type { Detection, EngineName } from "../core/detectionSchema.js";

/** The `ggufEngine` setting: which engine serves GGUF models whose config names none. */
export type GgufEngineSetting = "auto" | "node-llama-cpp" | "llama-server";

/** A standard llama-server binary the daemon found, and where (see findLlamaServer). */
export interface FoundLlamaServer {
  path: string;
  source: string;
}

/** The daemon-wide default for GGUF models, decided once at start; null keeps detection's choice. */
export interface GgufServingChoice {
  engine: "node-llama-cpp" | "llama-server";
  reason: string;
  /** Tasks it applies to: `auto` moves generation only (embeddings stay in process, see docs/benchmarks.md). */
  tasks: readonly string[] | "all";
}

/** The same words chooseEngine uses for a config's engine: such a choice is never overridden. */
export const CONFIG_ENGINE_REASON = "chosen in the model's config";

const GENERATION_TASKS = ["chat", "text-generation"] as const;

// A llama-server found on PATH is of unknown version and flags: `auto` only trusts the binaries the project
// built or was pointed at. Naming `ggufEngine: llama-server` accepts any.
const TRUSTED_SOURCES = new Set(["config", "env", "build-cache", "release-dir"]);

/**
 * What `ggufEngine` means on this machine. `auto` serves GGUF generation on a supervised llama-server when a
 * trusted binary exists (it decodes up to 2× faster than node-llama-cpp in process and batches concurrent streams
 * better: docs/benchmarks.md, suite vs-llama-server), else in process, which needs no setup.
 */
export function ggufServingChoice(setting: GgufEngineSetting, found: FoundLlamaServer | null): GgufServingChoice | null {
  if (setting === "node-llama-cpp") return { engine: "node-llama-cpp", reason: "GGUF runs in process on node-llama-cpp (ggufEngine: node-llama-cpp)", tasks: "all" };
  if (setting === "llama-server") {
    const where = found ? ` at ${found.path}` : " (no binary found yet: see docs/native.md)";
    return { engine: "llama-server", reason: `GGUF runs on a supervised llama-server${where} (ggufEngine: llama-server)`, tasks: "all" };
  }
  if (found && TRUSTED_SOURCES.has(found.source)) {
    return {
      engine: "llama-server",
      reason: `GGUF generation runs on a supervised llama-server, found at ${found.path} (${found.source}); it is faster than in process (ggufEngine: auto)`,
      tasks: GENERATION_TASKS,
    };
  }
  return null;
}

function applies(choice: GgufServingChoice, detection: Detection): boolean {
  if (detection.format !== "gguf" || detection.engine === null || detection.engine.reason === CONFIG_ENGINE_REASON) return false;
  if (detection.engine.name === choice.engine) return false;
  if (detection.engine.name !== "node-llama-cpp" && detection.engine.name !== "llama-server") return false;
  if (!detection.alternatives.includes(choice.engine)) return false;
  return choice.tasks === "all" || choice.tasks.includes(detection.task);
}

/** Detection with the daemon's GGUF default applied: the engine, why, and the other engines it could use. */
export function withGgufServingChoice(detection: Detection, choice: GgufServingChoice | null): Detection {
  if (choice === null || !applies(choice, detection)) return detection;
  const previous = detection.engine!.name;
  const alternatives: EngineName[] = [previous, ...detection.alternatives.filter((e) => e !== choice.engine && e !== previous)];
  return { ...detection, engine: { name: choice.engine, reason: choice.reason }, alternatives };
}
