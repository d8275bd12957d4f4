import { describe, expect, it } from "vitest";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { runCli } from "../helpers/spawnCli.js";

describe("tabagent detect says which engine the daemon would pick here", () => {
  it("with a built llama-server and ggufEngine auto: llama-server for a chat GGUF, in process for an embedding one", async () => {
    const fx = await ensureFixtures();
    const binary = await llamaServerBinary();
    const r = await runCli(["detect", "--json", "--no-probe", fx.chatModelPath, fx.embeddingModelPath], { TABAGENT_GGUF_ENGINE: "auto", TABAGENT_LLAMA_SERVER: binary });
    expect(r.code).toBe(0);
    const [chat, embed] = JSON.parse(r.stdout) as { engine: { name: string; reason: string }; alternatives: string[] }[];
    expect(chat!.engine.name).toBe("llama-server");
    expect(chat!.engine.reason).toContain(binary);
    expect(chat!.alternatives[0]).toBe("node-llama-cpp");
    expect(embed!.engine.name).toBe("node-llama-cpp");
    const plain = await runCli(["detect", "--no-probe", fx.chatModelPath], { TABAGENT_GGUF_ENGINE: "node-llama-cpp", TABAGENT_LLAMA_SERVER: binary });
    expect(plain.stdout).toMatch(/node-llama-cpp/);
  });

  it("a bad TABAGENT_GGUF_ENGINE is refused with the values it takes", async () => {
    const fx = await ensureFixtures();
    const r = await runCli(["detect", "--no-probe", fx.chatModelPath], { TABAGENT_GGUF_ENGINE: "fast" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TABAGENT_GGUF_ENGINE must be one of auto, node-llama-cpp, llama-server/);
  });
});
