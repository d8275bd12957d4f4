/** Execution providers onnxruntime-node can be asked for, by the names its session options take. */
export const ONNX_PROVIDERS = ["cpu", "cuda", "tensorrt", "webgpu", "dml", "coreml"] as const;
