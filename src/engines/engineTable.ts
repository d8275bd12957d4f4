import type { EngineName, ModelFormatName } from "../core/detectionSchema.js";
import type { EngineSpec } from "./EngineSpec.js";
import { llamaServerBitnetEngine } from "./llamaServerBitnetEngine.js";
import { llamaServerEngine } from "./llamaServerEngine.js";
import { litertEngine } from "./litertEngine.js";
import { nodeLlamaCppEngine } from "./nodeLlamaCppEngine.js";
import { onnxruntimeEngine } from "./onnxruntimeEngine.js";
import { transformersEngine } from "./transformersEngine.js";
import { upstreamEngine } from "./upstreamEngine.js";

/**
 * Every engine, one line each. Order matters: for a format several engines serve, the first one listed is the
 * default (node-llama-cpp before llama-server for GGUF). Adding an engine: its file, and a line here.
 */
export const ENGINES: Readonly<Record<EngineName, EngineSpec>> = {
  "node-llama-cpp": nodeLlamaCppEngine,
  "llama-server": llamaServerEngine,
  "llama-server-bitnet": llamaServerBitnetEngine,
  onnxruntime: onnxruntimeEngine,
  transformers: transformersEngine,
  litert: litertEngine,
  upstream: upstreamEngine,
};

/** Engines that serve `format`, default first. */
export function enginesForFormat(format: ModelFormatName): EngineName[] {
  return Object.values(ENGINES)
    .filter((e) => e.formats.includes(format))
    .map((e) => e.name);
}

/** Engines that have a capability, for "supported by ..." in a 400. */
export function enginesWith(capability: keyof EngineSpec["capabilities"]): EngineName[] {
  return Object.values(ENGINES)
    .filter((e) => e.capabilities[capability])
    .map((e) => e.name);
}
