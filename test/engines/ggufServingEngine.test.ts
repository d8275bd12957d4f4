import { describe, expect, it } from "vitest";
import type { Detection } from "../../src/core/detectionSchema.js";
import { CONFIG_ENGINE_REASON, ggufServingChoice, withGgufServingChoice } from "../../src/engines/ggufServingEngine.js";

const built = { path: "/cache/llama-server/standard-1/bin/llama-server", source: "build-cache" };

function gguf(task: Detection["task"], engine: Detection["engine"] = { name: "node-llama-cpp", reason: "GGUF runs in process on node-llama-cpp" }): Detection {
  return {
    source: "/m/x.gguf",
    format: "gguf",
    task,
    reason: "general.architecture = llama",
    architecture: "llama",
    parameterCount: null,
    quantization: null,
    contextLength: null,
    hasChatTemplate: true,
    files: [],
    warnings: [],
    details: {},
    engine,
    alternatives: ["llama-server"],
  };
}

describe("ggufServingChoice", () => {
  it("auto: llama-server for generation when a built or configured binary exists, with where in the reason", () => {
    const c = ggufServingChoice("auto", built)!;
    expect(c.engine).toBe("llama-server");
    expect(c.reason).toContain(built.path);
    expect(c.reason).toContain("ggufEngine: auto");
    expect(c.tasks).toEqual(["chat", "text-generation"]);
    expect(ggufServingChoice("auto", { path: "/x", source: "env" })?.engine).toBe("llama-server");
    expect(ggufServingChoice("auto", { path: "/x", source: "release-dir" })?.engine).toBe("llama-server");
  });

  it("auto: no binary, or only one on PATH (unknown version), keeps node-llama-cpp", () => {
    expect(ggufServingChoice("auto", null)).toBeNull();
    expect(ggufServingChoice("auto", { path: "/usr/bin/llama-server", source: "path" })).toBeNull();
  });

  it("an explicit setting applies to every GGUF task, found binary or not", () => {
    expect(ggufServingChoice("llama-server", null)).toMatchObject({ engine: "llama-server", tasks: "all" });
    expect(ggufServingChoice("llama-server", null)!.reason).toContain("no binary found yet");
    expect(ggufServingChoice("node-llama-cpp", built)).toMatchObject({ engine: "node-llama-cpp", tasks: "all" });
  });
});

describe("withGgufServingChoice", () => {
  const auto = ggufServingChoice("auto", built)!;

  it("moves a chat model to llama-server and keeps node-llama-cpp as the first alternative", () => {
    const d = withGgufServingChoice(gguf("chat"), auto);
    expect(d.engine).toEqual({ name: "llama-server", reason: auto.reason });
    expect(d.alternatives).toEqual(["node-llama-cpp"]);
  });

  it("auto leaves embeddings in process; an explicit llama-server moves them too", () => {
    const embed = gguf("embeddings");
    expect(withGgufServingChoice(embed, auto)).toBe(embed);
    expect(withGgufServingChoice(embed, ggufServingChoice("llama-server", built)).engine?.name).toBe("llama-server");
  });

  it("never overrides the model's config, other formats, or a detection without the engine as an alternative", () => {
    const configured = gguf("chat", { name: "node-llama-cpp", reason: CONFIG_ENGINE_REASON });
    expect(withGgufServingChoice(configured, auto)).toBe(configured);
    const bitnet = { ...gguf("chat", { name: "llama-server-bitnet", reason: "I2_S tensors" }), format: "bitnet-gguf" } as Detection;
    expect(withGgufServingChoice(bitnet, auto)).toBe(bitnet);
    const onlyInProcess = { ...gguf("chat"), alternatives: [] };
    expect(withGgufServingChoice(onlyInProcess, auto)).toBe(onlyInProcess);
  });

  it("node-llama-cpp setting moves a model detection gave llama-server back in process", () => {
    const d = withGgufServingChoice(
      { ...gguf("chat", { name: "llama-server", reason: "x" }), alternatives: ["node-llama-cpp"] },
      ggufServingChoice("node-llama-cpp", null),
    );
    expect(d.engine?.name).toBe("node-llama-cpp");
    expect(d.alternatives).toEqual(["llama-server"]);
  });
});
