import { describe, expect, it } from "vitest";
import {
  bitnetFlavorReason,
  detectionSchema,
  formatDetectionSchema,
  ggufDetails,
  hasInvalidWeights,
  liteRtDetails,
  onnxDetails,
  transformersDetails,
  upstreamName,
  withProbeDetails,
  type Detection,
} from "../../src/core/detectionSchema.js";

/** Every field but `details`, in the schema's order (spreads keep the order, `details` comes last). */
const BASE = {
  source: "/models/m",
  format: "gguf",
  task: "chat",
  reason: "test",
  architecture: "llama",
  parameterCount: 1000,
  quantization: "Q4_K_M",
  contextLength: 4096,
  hasChatTemplate: true,
  files: [{ path: "m.gguf", size: 10, role: "weights" }],
  engine: { name: "node-llama-cpp", reason: "test" },
  alternatives: ["llama-server"],
  warnings: [],
};

const GGUF = {
  name: "Tiny",
  ggufVersion: 3,
  fileType: 15,
  poolingType: null,
  tensorCount: 2,
  tensorTypes: { Q4_K: 1, F32: 1 },
  flavorReason: "no BitNet tensor types",
  hasVisionProjector: false,
};

const ONNX = {
  layout: "transformers.js",
  primaryFile: "onnx/model.onnx",
  components: ["model"],
  variants: [{ path: "onnx/model_fp16.onnx", component: "model", quantization: "fp16", size: 100 }],
  inputs: [{ name: "input_ids", type: "int64", shape: ["batch_size", "sequence_length"], kind: "tensor" }],
  outputs: [{ name: "logits", type: "float32", shape: ["batch_size", "sequence_length", 32000], kind: "tensor" }],
  opset: 17,
  opsets: [{ domain: "", version: 17 }],
  producer: "pytorch 2.1",
  graphError: null,
  irVersion: 8,
  nodeCount: 10,
  initializerCount: 4,
  initializerTypes: { float32: 4 },
  inlineDataBytes: 64,
  externalData: [{ location: "model.onnx_data", tensors: 3, bytes: 1024, path: "onnx/model.onnx_data", exists: true, safe: true }],
  unsafeExternalData: false,
  genai: false,
  genaiConfig: null,
  bytesRead: 4096,
};

/** One detection per format, as JSON holds those the detectors (and the upstream catalog) write. */
const EXAMPLES: Record<string, Record<string, unknown>> = {
  gguf: { ...BASE, format: "gguf", details: GGUF },
  invalidGguf: { ...BASE, format: "gguf", engine: null, alternatives: [], details: { invalidWeights: ["m.gguf: bad header"] } },
  bitnet: {
    ...BASE,
    format: "bitnet-gguf",
    engine: { name: "llama-server-bitnet", reason: "tensor types I2_S" },
    details: { ...GGUF, flavorReason: "tensor types I2_S" },
  },
  onnx: { ...BASE, format: "onnx", engine: { name: "onnxruntime", reason: "test" }, alternatives: [], details: ONNX },
  safetensors: {
    ...BASE,
    format: "safetensors",
    engine: { name: "transformers", reason: "test" },
    alternatives: [],
    details: {
      modelType: "llama",
      architectures: ["LlamaForCausalLM"],
      torchDtype: "bfloat16",
      needsCustomCode: true,
      autoMap: ["AutoConfig"],
      quantMethod: "gptq",
      quantBits: 4,
      shards: 1,
      tensorCount: 2,
      dtypes: { BF16: { tensors: 2, parameters: 1000, bytes: 2000 } },
    },
  },
  pytorch: {
    ...BASE,
    format: "pytorch",
    engine: null,
    alternatives: ["transformers"],
    details: { pickleFormats: { "pytorch_model.bin": "torch-zip" }, modelType: "llama", shards: 1, unsafePickle: true },
  },
  litert: {
    ...BASE,
    format: "litert",
    engine: { name: "litert", reason: "test" },
    alternatives: [],
    details: {
      primaryFile: "model.tflite",
      container: "tflite",
      models: [{ path: "model.tflite", container: "tflite", size: 10 }],
      tflite: {
        version: 3,
        description: null,
        subgraphCount: 1,
        subgraphNames: [],
        metadata: [],
        signatures: [{ key: "serving_default", inputs: ["x"], outputs: ["y"] }],
        operatorCodeCount: 1,
        bufferCount: 2,
        tensorCount: 3,
        bytesRead: 512,
      },
    },
  },
  unknown: { ...BASE, format: "unknown", task: "unknown", engine: null, alternatives: [], details: {} },
  configOnly: { ...BASE, format: "unknown", engine: null, alternatives: [], details: { modelType: "bert", architectures: ["BertModel"] } },
  upstream: { ...BASE, format: "unknown", task: "unknown", engine: null, alternatives: [], details: { upstream: "lab" } },
  probed: { ...BASE, format: "gguf", engine: null, details: { ...GGUF, loadProbe: "llama.cpp aborted", chatTemplateProblem: "too slow" } },
};

describe("detectionSchema: details typed per format", () => {
  it.each(Object.entries(EXAMPLES))("a %s detection parses back to the same JSON, key order included", (_, d) => {
    const json = JSON.stringify(d);
    expect(JSON.stringify(detectionSchema.parse(JSON.parse(json)))).toBe(json);
  });

  it("a detector's result (no source, engine, alternatives) parses with formatDetectionSchema", () => {
    const { source: _s, engine: _e, alternatives: _a, ...fromDetector } = EXAMPLES.onnx!;
    expect(formatDetectionSchema.safeParse(EXAMPLES.onnx).success).toBe(true); // extra keys are dropped, as before
    expect(formatDetectionSchema.parse(fromDetector)).toEqual(fromDetector);
  });

  it.each([
    ["gguf", { ...EXAMPLES.gguf, details: { ...GGUF, tensorCount: "2" } }],
    ["onnx layout", { ...EXAMPLES.onnx, details: { ...ONNX, layout: "zip" } }],
    ["onnx variant", { ...EXAMPLES.onnx, details: { ...ONNX, variants: [{ path: "x.onnx" }] } }],
    ["pytorch", { ...EXAMPLES.pytorch, details: { unsafePickle: false } }],
    ["safetensors invalid weights", { ...EXAMPLES.safetensors, details: { invalidWeights: ["not an object"] } }],
    ["litert", { ...EXAMPLES.litert, details: { container: "zip" } }],
    ["upstream", { ...EXAMPLES.upstream, details: { upstream: 1 } }],
    ["probe", { ...EXAMPLES.gguf, details: { loadProbe: false } }],
  ])("a wrong-typed detail is rejected (%s)", (_, d) => {
    expect(detectionSchema.safeParse(d).success).toBe(false);
  });

  it("rejects details of another format and keys no detector writes", () => {
    expect(detectionSchema.safeParse({ ...EXAMPLES.gguf, details: ONNX }).success).toBe(false);
    expect(detectionSchema.safeParse({ ...EXAMPLES.onnx, details: { ...ONNX, surprise: 1 } }).success).toBe(false);
    // The pickle opt-in is gone: a detection cached with it is a miss, so its model is detected again.
    expect(detectionSchema.safeParse({ ...EXAMPLES.pytorch, details: { unsafePickle: true, pickleAllowed: true } }).success).toBe(false);
    expect(detectionSchema.safeParse({ ...EXAMPLES.unknown, format: "zip" }).success).toBe(false);
  });
});

/** The examples, typed. */
const D: Record<string, Detection> = Object.fromEntries(Object.entries(EXAMPLES).map(([k, v]) => [k, detectionSchema.parse(v)]));

describe("typed reads of details", () => {
  it("give a format's details, and null for other formats", () => {
    expect(ggufDetails(D.gguf!)?.tensorTypes).toEqual({ Q4_K: 1, F32: 1 });
    expect(ggufDetails(D.bitnet!)?.flavorReason).toBe("tensor types I2_S");
    expect(ggufDetails(D.onnx!)).toBeNull();
    expect(onnxDetails(D.onnx!)?.primaryFile).toBe("onnx/model.onnx");
    expect(onnxDetails(D.litert!)).toBeNull();
    expect(transformersDetails(D.safetensors!)?.autoMap).toEqual(["AutoConfig"]);
    expect(transformersDetails(D.pytorch!)?.unsafePickle).toBe(true);
    expect(transformersDetails(D.configOnly!)).toBeNull();
    expect(liteRtDetails(D.litert!)?.tflite?.version).toBe(3);
    expect(upstreamName(D.upstream!)).toBe("lab");
    expect(upstreamName(D.unknown!)).toBeNull();
  });

  it("answer what engine choice asks: BitNet flavor, broken weights", () => {
    expect(bitnetFlavorReason(D.bitnet!)).toBe("tensor types I2_S");
    expect(bitnetFlavorReason(D.gguf!)).toBeNull();
    expect(hasInvalidWeights(D.invalidGguf!)).toBe(true);
    expect(hasInvalidWeights(D.gguf!)).toBe(false);
    expect(hasInvalidWeights(detectionSchema.parse({ ...EXAMPLES.safetensors, details: { invalidWeights: [{ path: "a", message: "b", actualFormat: null }] } }))).toBe(
      true,
    );
  });

  it("withProbeDetails adds probe facts to a copy", () => {
    const d = D.gguf!;
    const probed = withProbeDetails(d, { loadProbe: "aborted" });
    expect(probed.details).toEqual({ ...GGUF, loadProbe: "aborted" });
    expect(d.details).toEqual(GGUF);
    expect(detectionSchema.parse(probed)).toEqual(probed);
  });
});
