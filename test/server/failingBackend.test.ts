import OpenAI from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { loadConfig } from "../../src/config/loadConfig.js";
import type { GenerationChunk, ModelDescriptor } from "../../src/core/types.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { postJson } from "../helpers/startTestDaemon.js";

/** An engine that breaks in the ways real engines do: before output, and in the middle of a stream. */
class BrokenBackend implements Backend {
  readonly parallel = 1;
  constructor(readonly descriptor: ModelDescriptor) {}
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  // eslint-disable-next-line require-yield -- an engine that fails before its first chunk
  async *chat(): AsyncIterable<GenerationChunk> {
    throw new TypeError("Cannot read properties of undefined (reading 'kv_cache') at /secret/path.js:12");
  }
  async *complete(): AsyncIterable<GenerationChunk> {
    yield { type: "text", index: 0, text: "partial " };
    yield { type: "text", index: 0, text: "answer" };
    throw new Error("engine crashed at /secret/path.js");
  }
}

let daemon: Daemon;
let url: string;
beforeAll(async () => {
  const fx = await ensureFixtures();
  const config = loadConfig({ base: { port: 0, models: [{ id: "broken", path: fx.chatModelPath }], ggufEngine: "node-llama-cpp", logLevel: "silent" } });
  daemon = await createDaemon({ config, logger: pino({ level: "silent" }), backends: { "node-llama-cpp": (d) => new BrokenBackend(d) } });
  url = (await daemon.listen()).url;
});
afterAll(async () => {
  await daemon?.close();
});

describe("engine failures", () => {
  it("an unexpected error is a 500 server_error without details", async () => {
    for (const stream of [false, true]) {
      const r = await postJson(`${url}/v1/chat/completions`, { model: "broken", messages: [{ role: "user", content: "x" }], stream });
      expect(r.status).toBe(500);
      expect(r.json.error).toMatchObject({ type: "server_error", code: "server_error", param: null });
      expect(r.text).not.toMatch(/secret|kv_cache|at \//);
    }
  });

  it("an error mid-stream arrives as one SSE error event, then the stream closes", async () => {
    const r = await postJson(`${url}/v1/completions`, { model: "broken", prompt: "x", stream: true });
    expect(r.status).toBe(200);
    const events = r.text
      .split("\n\n")
      .filter(Boolean)
      .map((e) => e.replace(/^data: /, ""));
    expect(events.slice(0, 2).map((e) => JSON.parse(e).choices[0].text)).toEqual(["partial ", "answer"]);
    expect(JSON.parse(events.at(-1)!)).toEqual({ error: { message: expect.any(String), type: "server_error", param: null, code: "server_error" } });
    expect(r.text).not.toContain("[DONE]");
    expect(r.text).not.toContain("secret");
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 });
    const stream = await client.completions.create({ model: "broken", prompt: "x", stream: true });
    await expect(
      (async () => {
        for await (const _ of stream);
      })(),
    ).rejects.toThrow();
  });

  it("a stream that ended with an error event is counted under the event's status (500), not 200", async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const completions = text.split("\n").filter((l) => l.startsWith("tabagent_requests_total{") && l.includes('route="/v1/completions"'));
    expect(
      completions.some((l) => /status="500"\} [12]$/.test(l)),
      completions.join("\n"),
    ).toBe(true);
    expect(completions.some((l) => l.includes('status="200"'))).toBe(false);
  });

  it("keeps serving afterwards", async () => {
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});
