import type { EngineName, FormatDetection } from "../core/detectionSchema.js";

export interface EngineChoice {
  engine: { name: EngineName; reason: string } | null;
  alternatives: EngineName[];
}

export interface ChooseEngineOptions {
  /** Engine named in the model's config; wins when it can serve the format. */
  override?: EngineName;
  /** Engines that a second detector found usable (an ONNX export beside safetensors weights, say). */
  extraAlternatives?: EngineName[];
}

/** Which engines can run each format, best first. */
const ENGINES_BY_FORMAT: Record<FormatDetection["format"], EngineName[]> = {
  gguf: ["node-llama-cpp", "llama-server"],
  "bitnet-gguf": ["llama-server-bitnet"],
  safetensors: ["transformers"],
  pytorch: ["transformers"],
  onnx: ["onnxruntime"],
  litert: ["litert"],
  unknown: [],
};

const WHY: Partial<Record<EngineName, string>> = {
  "node-llama-cpp": "GGUF runs in process on node-llama-cpp",
  "llama-server-bitnet": "BitNet 1.58 kernels need the BitNet build of llama-server",
  transformers: "Transformers weights run in the Python transformers sidecar",
  onnxruntime: "ONNX graphs run on ONNX Runtime",
  litert: "LiteRT models run on the LiteRT runtime",
};

/** The routing decision on top of a detection: the engine that serves it, why, and what else could. */
export function chooseEngine(d: FormatDetection, options: ChooseEngineOptions = {}): EngineChoice {
  const candidates = [...ENGINES_BY_FORMAT[d.format]];
  // Mainline llama.cpp also knows the plain `bitnet` architecture when its tensors are not BitNet-only.
  if (d.format === "bitnet-gguf" && d.architecture === "bitnet" && !String(d.details.flavorReason ?? "").includes("tensor")) {
    candidates.push("node-llama-cpp", "llama-server");
  }
  for (const extra of options.extraAlternatives ?? []) if (!candidates.includes(extra)) candidates.push(extra);

  // Weights whose header is broken would only fail at load time: serve nothing, the warning says why.
  if (d.details.invalidWeights) return { engine: null, alternatives: [] };
  if (d.format === "pytorch" && d.details.pickleAllowed !== true) {
    return { engine: null, alternatives: candidates };
  }
  if (d.format === "unknown" || candidates.length === 0) return { engine: null, alternatives: [] };

  if (options.override) {
    if (candidates.includes(options.override) || options.override === "upstream") {
      return { engine: { name: options.override, reason: `chosen in the model's config` }, alternatives: candidates.filter((c) => c !== options.override) };
    }
    throw new Error(`engine '${options.override}' cannot serve a ${d.format} model (possible: ${candidates.join(", ") || "none"})`);
  }
  const [first, ...rest] = candidates;
  const reason = d.format === "bitnet-gguf" ? String(d.details.flavorReason ?? WHY[first!]) : (WHY[first!] ?? `${first} serves ${d.format}`);
  return { engine: { name: first!, reason }, alternatives: rest };
}
