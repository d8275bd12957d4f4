import { describe, expect, it } from "vitest";
import { UnsupportedParameterError } from "../../src/core/errors.js";
import { checkCapabilities } from "../../src/engines/checkCapabilities.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

function refusal(fn: () => void): UnsupportedParameterError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UnsupportedParameterError);
    return e as UnsupportedParameterError;
  }
  throw new Error("expected a refusal");
}

describe("checkCapabilities", () => {
  it("passes features the engine has", () => {
    const d = testDescriptor({ id: "m", engine: "node-llama-cpp" });
    expect(() => checkCapabilities(d, "chat", [{ capability: "tokenIds", param: "return_token_ids" }])).not.toThrow();
  });

  it("names the parameter, the engine and the engines that do support it", () => {
    const d = testDescriptor({ id: "m", engine: "llama-server" });
    const e = refusal(() => checkCapabilities(d, "chat", [{ capability: "tokenIds", param: "return_token_ids" }]));
    expect(e).toMatchObject({ status: 400, param: "return_token_ids", code: "unsupported_parameter" });
    expect(e.message).toBe(
      "Parameter 'return_token_ids' is not supported by the llama-server engine that serves 'm' (engines that support it: node-llama-cpp, onnxruntime, transformers).",
    );
  });

  it("says so when no engine has it yet", () => {
    const d = testDescriptor({ id: "m", engine: "onnxruntime" });
    const e = refusal(() => checkCapabilities(d, "chat", [{ capability: "reasoning", param: "reasoning_effort" }]));
    expect(e.message).toMatch(/'reasoning_effort' is not supported by the onnxruntime engine that serves 'm' \(no engine supports it yet\)/);
  });

  it("reports the first missing feature in request order", () => {
    const d = testDescriptor({ id: "m", engine: "upstream" });
    const e = refusal(() =>
      checkCapabilities(d, "completions", [
        { capability: "completions", param: "prompt" },
        { capability: "suffix", param: "suffix" },
        { capability: "multipleChoices", param: "n" },
      ]),
    );
    expect(e.param).toBe("suffix");
  });
});
