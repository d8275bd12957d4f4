import { capabilities } from "./capabilities.js";
import type { EngineSpec } from "./EngineSpec.js";

/** Detected and described, not served yet: a request gets 503 engine_unavailable with `install`. */
export const litertEngine: EngineSpec = {
  name: "litert",
  summary: "LiteRT (TFLite, .task, .litertlm) models; detected, not served by this version",
  formats: ["litert"],
  why: "LiteRT models run on the LiteRT runtime",
  install: "LiteRT models are not served by this version yet",
  capabilities: capabilities(),
  load: null,
};
