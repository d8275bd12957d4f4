import { bitnetFlavorReason, hasInvalidWeights, type EngineName, type FormatDetection } from "../core/detectionSchema.js";
import { ENGINES, enginesForFormat } from "../engines/engineTable.js";
import { CONFIG_ENGINE_REASON } from "../engines/ggufServingEngine.js";

interface EngineChoice {
  engine: { name: EngineName; reason: string } | null;
  alternatives: EngineName[];
}

interface ChooseEngineOptions {
  /** Engine named in the model's config; wins when it can serve the format. */
  override?: EngineName;
  /** Engines that a second detector found usable (an ONNX export beside safetensors weights, say). */
  extraAlternatives?: EngineName[];
}

/** The routing decision on top of a detection: the engine that serves it, why, and what else could. */
export function chooseEngine(d: FormatDetection, options: ChooseEngineOptions = {}): EngineChoice {
  const candidates = enginesForFormat(d.format);
  // Mainline llama.cpp also knows the plain `bitnet` architecture when its tensors are not BitNet-only.
  if (d.format === "bitnet-gguf" && d.architecture === "bitnet" && !(bitnetFlavorReason(d) ?? "").includes("tensor")) {
    candidates.push("node-llama-cpp", "llama-server");
  }
  for (const extra of options.extraAlternatives ?? []) if (!candidates.includes(extra)) candidates.push(extra);

  // Weights whose header is broken would only fail at load time: serve nothing, the warning says why.
  if (hasInvalidWeights(d)) return { engine: null, alternatives: [] };
  // Pickle weights run code when unpickled and the transformers sidecar loads safetensors only: nothing serves them
  // (the warning says to convert them), and no model config can choose an engine for them.
  if (d.format === "pytorch") return { engine: null, alternatives: [] };
  if (d.format === "unknown" || candidates.length === 0) return { engine: null, alternatives: [] };

  if (options.override) {
    if (candidates.includes(options.override) || options.override === "upstream") {
      return { engine: { name: options.override, reason: CONFIG_ENGINE_REASON }, alternatives: candidates.filter((c) => c !== options.override) };
    }
    throw new Error(`engine '${options.override}' cannot serve a ${d.format} model (possible: ${candidates.join(", ") || "none"})`);
  }
  const [first, ...rest] = candidates;
  const reason = d.format === "bitnet-gguf" ? (bitnetFlavorReason(d) ?? ENGINES[first!].why) : ENGINES[first!].why;
  return { engine: { name: first!, reason }, alternatives: rest };
}
