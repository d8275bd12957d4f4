import { describe, expect, it } from "vitest";
import { engineNameSchema, modelFormatSchema } from "../../src/core/detectionSchema.js";
import { CAPABILITIES, capabilities } from "../../src/engines/capabilities.js";
import { ENGINES, enginesForFormat, enginesWith } from "../../src/engines/engineTable.js";

describe("engine table", () => {
  it("describes every engine name once, under its own name", () => {
    expect(Object.keys(ENGINES).sort()).toEqual([...engineNameSchema.options].sort());
    for (const [name, spec] of Object.entries(ENGINES)) {
      expect(spec.name).toBe(name);
      expect(spec.why.length).toBeGreaterThan(0);
      expect(spec.install.length).toBeGreaterThan(0);
      expect(Object.keys(spec.capabilities).sort()).toEqual(Object.keys(CAPABILITIES).sort());
    }
  });

  it("gives every known format an engine, the in-process one first for GGUF", () => {
    for (const format of modelFormatSchema.options) {
      if (format === "unknown") expect(enginesForFormat(format)).toEqual([]);
      else expect(enginesForFormat(format).length).toBeGreaterThan(0);
    }
    expect(enginesForFormat("gguf")).toEqual(["node-llama-cpp", "llama-server"]);
    expect(enginesForFormat("bitnet-gguf")).toEqual(["llama-server-bitnet"]);
    expect(enginesForFormat("safetensors")).toEqual(["transformers"]);
    expect(enginesForFormat("pytorch")).toEqual(["transformers"]);
  });

  it("keeps engines that cannot run without capabilities, and every runnable engine serves some endpoint", () => {
    for (const spec of Object.values(ENGINES)) {
      const any = spec.capabilities.chat || spec.capabilities.completions || spec.capabilities.embeddings;
      expect(any).toBe(spec.load !== null);
    }
  });

  it("loads each runnable engine's factory on demand", async () => {
    for (const spec of Object.values(ENGINES)) {
      if (spec.load) expect(typeof (await spec.load())).toBe("function");
    }
  });

  it("lists the engines with a capability in table order", () => {
    expect(enginesWith("tokenIds")).toEqual(["node-llama-cpp", "onnxruntime", "transformers"]);
    expect(enginesWith("embeddings")).toContain("upstream");
  });

  it("starts every capability off", () => {
    const none = capabilities();
    expect(Object.values(none).every((v) => v === false)).toBe(true);
    expect(capabilities("tools").tools).toBe(true);
  });
});
