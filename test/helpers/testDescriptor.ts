import type { ModelDescriptor } from "../../src/core/types.js";
import type { Detection } from "../../src/core/detectionSchema.js";

/** A descriptor for lifecycle tests that never touch a file. */
export function testDescriptor(overrides: Partial<ModelDescriptor> = {}): ModelDescriptor {
  const detection: Detection = {
    source: "/x.gguf",
    format: "gguf",
    task: "chat",
    reason: "test",
    architecture: "llama",
    parameterCount: 1,
    quantization: "F32",
    contextLength: 512,
    hasChatTemplate: true,
    files: [{ path: "x.gguf", size: 1, role: "weights" }],
    engine: { name: "node-llama-cpp", reason: "test" },
    alternatives: [],
    warnings: [],
    details: {},
  };
  return { id: "m", path: "/x.gguf", task: "chat", engine: "node-llama-cpp", detection, sizeBytes: 1, created: 0, ...overrides };
}
