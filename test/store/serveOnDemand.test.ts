import { APIError } from "openai";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";
import { tempDir } from "./storeRepos.js";

let hub: FakeHub;
let store: Awaited<ReturnType<typeof tempDir>>;
const started: TestDaemon[] = [];

interface ModelEntryWire {
  id: string;
  tabagent: { state: string; format: string; alias_of?: string; download?: { done_bytes: number; total_bytes: number; error: string | null } };
}

async function listModels(url: string): Promise<ModelEntryWire[]> {
  return ((await (await fetch(`${url}/v1/models`)).json()) as { data: ModelEntryWire[] }).data;
}

beforeAll(async () => {
  const fixtures = await ensureFixtures();
  const gguf = await readFile(fixtures.chatModelPath);
  hub = await startFakeHub({
    // About 0.5 MB in 64 KiB chunks 150 ms apart: the download takes over a second.
    "acme/tiny-chat-GGUF": { chunkDelayMs: 150, files: { "tiny-chat-Q8_0.gguf": gguf, "tiny-chat-F32.gguf": gguf } },
    "acme/gated-GGUF": { gated: true, files: { "g-Q8_0.gguf": gguf } },
  });
  store = await tempDir("serve-store-");
});
afterAll(async () => {
  for (const d of started.splice(0)) await d.close();
  await hub.close();
  await store.cleanup();
});

const start = async (overrides: Record<string, unknown>) => {
  const d = await startTestDaemon({ storeDir: store.path, discover: [], ...overrides }, [], {});
  started.push(d);
  return d;
};

describe("serve: models given by hub source", () => {
  it("pulls in the background, answers 503 with Retry-After meanwhile, then serves the model", async () => {
    const d = await start({
      hubUrl: hub.url,
      models: [
        { id: "pulled", source: "acme/tiny-chat-GGUF:Q8_0", contextSize: 256 },
        { id: "locked", source: "acme/gated-GGUF" },
      ],
      aliases: { chat: "pulled" },
    });
    const err = await d.client.chat.completions.create({ model: "pulled", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    const api = err as APIError;
    expect(api.status).toBe(503);
    expect(api.code).toBe("model_downloading");
    expect(Number(api.headers?.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // The alias answers the same while its model downloads.
    await expect(d.client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }], max_tokens: 4 })).rejects.toMatchObject({ status: 503 });

    let models = await listModels(d.url);
    expect(models.find((m) => m.id === "pulled")?.tabagent).toMatchObject({ state: "downloading", download: { error: null } });

    for (let i = 0; i < 200; i++) {
      models = await listModels(d.url);
      if (models.find((m) => m.id === "pulled")?.tabagent.state !== "downloading") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(models.find((m) => m.id === "pulled")?.tabagent).toMatchObject({ state: "unloaded", format: "gguf" });
    expect(models.find((m) => m.id === "chat")?.tabagent).toMatchObject({ alias_of: "pulled" });
    const locked = models.find((m) => m.id === "locked")!.tabagent;
    expect(locked.state).toBe("download-failed");
    expect(locked.download?.error).toMatch(/gated or private.*HF_TOKEN/);

    const ok = await d.client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 });
    expect(ok.choices[0]?.finish_reason).toMatch(/stop|length/);
    const refused = await d.client.chat.completions
      .create({ model: "locked", messages: [{ role: "user", content: "hi" }], max_tokens: 4 })
      .catch((e: unknown) => e as APIError);
    expect(refused).toMatchObject({ status: 503, code: "model_download_failed" });
  });

  it("serves a model already in the store without the hub (offline start)", async () => {
    const d = await start({ hubUrl: "http://127.0.0.1:9", models: [{ id: "pulled", source: "acme/tiny-chat-GGUF:Q8_0" }] });
    const models = await listModels(d.url);
    expect(models.find((m) => m.id === "pulled")?.tabagent.state).toBe("unloaded");
  });

  it("lists pulled models found in the store under their store id", async () => {
    const d = await start({ models: [], discover: ["store"] });
    const ids = (await listModels(d.url)).map((m) => m.id);
    expect(ids).toContain("acme--tiny-chat-GGUF:Q8_0");
  });
});
