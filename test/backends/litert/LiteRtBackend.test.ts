import { describe, expect, it } from "vitest";
import { LiteRtBackend, liteRtAccelerator } from "../../../src/backends/litert/LiteRtBackend.js";

describe("LiteRtBackend", () => {
  it("runs on the CPU unless the model's device names a GPU", () => {
    expect([undefined, "auto", "cpu"].map(liteRtAccelerator)).toEqual(["cpu", "cpu", "cpu"]);
    expect(["cuda", "cuda:1", "mps"].map(liteRtAccelerator)).toEqual(["gpu", "gpu", "gpu"]);
  });

  it("quotes the child's refusal and the runtime's status from a failed start's last lines", () => {
    const lines = [
      "[sidecar] listening on unix:/tmp/x/child.sock, loading /m/model.task",
      "E0000 00:00:1796471572.696563   23651 engine.cc:854] Failed to create engine: NOT_FOUND: No file with name: METADATA.",
      "[sidecar] cannot load the model: RuntimeError: LiteRT-LM could not load the task bundle on cpu (Failed to create LiteRT-LM engine for /m/model.task)",
    ];
    expect(LiteRtBackend.loadFailure(lines)).toBe(
      "RuntimeError: LiteRT-LM could not load the task bundle on cpu (Failed to create LiteRT-LM engine for /m/model.task); LiteRT-LM: NOT_FOUND: No file with name: METADATA.",
    );
    expect(LiteRtBackend.loadFailure(["[sidecar] cannot load the model: the .task bundle has no METADATA entry"])).toBe("the .task bundle has no METADATA entry");
    expect(LiteRtBackend.loadFailure(["Segmentation fault"])).toBeNull();
  });
});
