import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { ensureBitnetFixtures } from "../../fixtures/ensureBitnetFixtures.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { llamaServerBinary, pidsMatching } from "../../helpers/llamaServerBinary.js";
import { startServe } from "../../helpers/spawnCli.js";

// `tabagent serve --model x.gguf` on a real I2_S file: the daemon picks the BitNet engine by itself.
describe("tabagent serve --model <I2_S GGUF>", () => {
  it("picks the BitNet engine, says why, serves chat and completions, and leaves no child behind", async () => {
    const fx = await ensureBitnetFixtures();
    const standard = await llamaServerBinary();
    const { chatModelPath } = await ensureFixtures(); // a standard (llama) GGUF beside it
    const s = await startServe(["--model", `bitnet=${fx.i2sPath}`, "--model", `std=${chatModelPath}`], {
      TABAGENT_LLAMA_SERVER_BITNET: fx.llamaServerBitnet,
      TABAGENT_LLAMA_SERVER: standard,
    });
    try {
      const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
      const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string; tabagent: { engine: string; engine_reason: string } }[] };
      const bitnet = models.data.find((m) => m.id === "bitnet")!.tabagent;
      expect(bitnet.engine).toBe("llama-server-bitnet");
      expect(bitnet.engine_reason).toMatch(/I2_S/);
      expect(models.data.find((m) => m.id === "std")!.tabagent.engine).not.toBe("llama-server-bitnet");
      const std = await client.completions.create({ model: "std", prompt: "The cat", max_tokens: 3, temperature: 0 });
      expect(std.usage!.completion_tokens).toBe(3);
      const chat = await client.chat.completions.create({ model: "bitnet", messages: [{ role: "user", content: "Hello" }], max_tokens: 5, temperature: 0 });
      expect(chat.usage!.completion_tokens).toBe(5);
      const stream = await client.completions.create({ model: "bitnet", prompt: "The cat", max_tokens: 5, temperature: 0, stream: true });
      let text = "";
      for await (const c of stream) text += c.choices[0]?.text ?? "";
      expect(text.length).toBeGreaterThan(0);
      expect(await pidsMatching(`--model ${fx.i2sPath}`)).toHaveLength(1);
    } finally {
      s.child.kill("SIGTERM");
      await s.child;
    }
    expect((await s.child).exitCode).toBe(0);
    expect(await pidsMatching(`--model ${fx.i2sPath}`)).toEqual([]);
  });
});
