import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../src/core/errors.js";
import { checkCapabilities } from "../../src/engines/checkCapabilities.js";
import { enginesWith } from "../../src/engines/engineTable.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

describe("rerank capability", () => {
  it("is declared by the engines that rerank, and by no other", () => {
    expect(enginesWith("rerank")).toEqual(["node-llama-cpp", "llama-server", "transformers", "upstream"]);
  });

  it("an engine that cannot rerank: 400 naming the engine and the path", () => {
    for (const engine of ["onnxruntime", "llama-server-bitnet", "litert"] as const) {
      const d = testDescriptor({ id: "m", engine, task: "rerank" });
      let error: unknown;
      try {
        checkCapabilities(d, "rerank", []);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidRequestError);
      expect(error).toMatchObject({ status: 400, param: "model", code: "model_task_mismatch" });
      expect((error as Error).message).toBe(`The ${engine} engine that serves 'm' cannot serve /v1/rerank.`);
    }
  });
});
