import type { OnnxSummary } from "./readOnnxSummary.js";

/** IR versions run from 1 (2017) to about 11 today; far beyond that is a corrupt field, not a future ONNX. */
const MAX_IR_VERSION = 100;

/**
 * Why onnxruntime would refuse a graph that parsed as protobuf (protobuf accepts almost any bytes as unknown
 * fields, so parsing alone proves little): an IR version, at least one opset import, at least one named output,
 * and an operator on every node. Empty when it should load.
 */
export function validateOnnxSummary(s: OnnxSummary): string[] {
  const problems: string[] = [];
  if (s.irVersion === null || s.irVersion < 1 || s.irVersion > MAX_IR_VERSION) problems.push(`implausible ir_version ${s.irVersion}`);
  if (s.opsets.length === 0) problems.push("no opset_import (onnxruntime refuses a model without one)");
  const badOpset = s.opsets.find((o) => o.version < 1);
  if (badOpset) problems.push(`opset_import for domain '${badOpset.domain || "ai.onnx"}' has version ${badOpset.version}`);
  if (s.outputs.length === 0) problems.push("the graph has no outputs");
  else if (s.outputs.some((o) => o.name === "")) problems.push("a graph output has no name");
  if (s.nodesWithoutOp > 0) problems.push(`${s.nodesWithoutOp} node(s) without an op_type`);
  return problems;
}
