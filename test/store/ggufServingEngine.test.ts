import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon } from "../helpers/startTestDaemon.js";

interface ModelCard {
  id: string;
  tabagent: { engine: string | null; engine_reason: string | null; alternatives?: string[] };
}

let dir: string;
let binary: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tabagent-gguf-engine-"));
  binary = await llamaServerBinary();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An environment where no llama-server can be found: no env var, an empty build cache, a PATH without one. */
const bare = () => ({ PATH: "/usr/bin:/bin", TABAGENT_CACHE_DIR: join(dir, "empty-cache"), HOME: dir });

describe("ggufEngine: which engine serves a GGUF model whose entry names none", () => {
  it("auto with a llama-server binary: chat models run on it (the reason says where it was found), embeddings stay in process", async () => {
    const d = await startTestDaemon({ ggufEngine: "auto" }, [], { ...bare(), TABAGENT_LLAMA_SERVER: binary });
    try {
      const cards = ((await d.client.models.list()).data as unknown as ModelCard[]).filter((m) => m.id.startsWith("tiny-"));
      const chat = cards.find((m) => m.id === "tiny-chat")!;
      expect(chat.tabagent.engine).toBe("llama-server");
      expect(chat.tabagent.engine_reason).toContain(binary);
      expect(chat.tabagent.engine_reason).toContain("ggufEngine: auto");
      expect(cards.find((m) => m.id === "tiny-embed")!.tabagent.engine).toBe("node-llama-cpp");

      const stream = await d.client.chat.completions.create({
        model: "tiny-chat",
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 8,
        temperature: 0,
        stream: true,
      });
      let text = "";
      let reason: string | null = null;
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? "";
        reason = c.choices[0]?.finish_reason ?? reason;
      }
      expect(reason).toBe("length");
      // The same answer as the llama-server engine named in the config gives.
      const named = await startTestDaemon({ models: [{ id: "tiny-chat", path: d.fixtures.chatModelPath, engine: "llama-server" }] }, [], {
        TABAGENT_LLAMA_SERVER: binary,
      });
      try {
        const ref = await named.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0 });
        expect(text).toBe(ref.choices[0]!.message.content);
      } finally {
        await named.close();
      }
      const e = await d.client.embeddings.create({ model: "tiny-embed", input: "hello" });
      expect(e.data[0]!.embedding.length).toBeGreaterThan(0);
    } finally {
      await d.close();
    }
  });

  it("auto with no binary anywhere: in process, and a request is served at once", async () => {
    const d = await startTestDaemon({ ggufEngine: "auto" }, [], bare());
    try {
      const chat = (await d.client.models.retrieve("tiny-chat")) as unknown as ModelCard;
      expect(chat.tabagent.engine).toBe("node-llama-cpp");
      expect(chat.tabagent.engine_reason).toMatch(/in process/);
      const r = await d.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, temperature: 0 });
      expect(r.choices[0]!.finish_reason).toBe("length");
    } finally {
      await d.close();
    }
  });

  it("a model's own engine wins over the setting", async () => {
    const d = await startTestDaemon({ ggufEngine: "auto", models: [{ id: "tiny-chat", path: (await startFixtures()).chatModelPath, engine: "node-llama-cpp" }] }, [], {
      ...bare(),
      TABAGENT_LLAMA_SERVER: binary,
    });
    try {
      const chat = (await d.client.models.retrieve("tiny-chat")) as unknown as ModelCard;
      expect(chat.tabagent).toMatchObject({ engine: "node-llama-cpp", engine_reason: "chosen in the model's config" });
    } finally {
      await d.close();
    }
  });

  it("ggufEngine llama-server with no binary: 503 engine_unavailable saying how to build one; node-llama-cpp setting keeps it in process", async () => {
    const d = await startTestDaemon({ ggufEngine: "llama-server" }, [], bare());
    try {
      const chat = (await d.client.models.retrieve("tiny-chat")) as unknown as ModelCard;
      expect(chat.tabagent.engine).toBe("llama-server");
      const r = await postJson(`${d.url}/v1/completions`, { model: "tiny-chat", prompt: "x", max_tokens: 2 });
      expect(r.status).toBe(503);
      expect(r.json.error).toMatchObject({ code: "engine_unavailable" });
      expect(r.json.error!.message).toMatch(/build-llama-server\.sh/);
    } finally {
      await d.close();
    }
    const inProcess = await startTestDaemon({ ggufEngine: "node-llama-cpp" }, [], { ...bare(), TABAGENT_LLAMA_SERVER: binary });
    try {
      expect(((await inProcess.client.models.retrieve("tiny-chat")) as unknown as ModelCard).tabagent.engine).toBe("node-llama-cpp");
    } finally {
      await inProcess.close();
    }
  });
});

describe("the default path under load keeps the daemon's queue, 429 and cancel on disconnect", () => {
  it("past slots and queue: 429 with Retry-After; clients that go away free their slots on the llama-server child", async () => {
    const d = await startTestDaemon({ ggufEngine: "auto", parallel: 2, queueSize: 1, contextSize: 2048 }, [], { ...bare(), TABAGENT_LLAMA_SERVER: binary });
    const status = async () => {
      const h = (await (await fetch(`${d.url}/health`)).json()) as { models: { id: string; running: number; queued: number }[] };
      return h.models.find((m) => m.id === "tiny-chat")!;
    };
    const until = async (cond: () => Promise<boolean>, ms: number) => {
      const end = Date.now() + ms;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error("condition not met in time");
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      expect(((await d.client.models.retrieve("tiny-chat")) as unknown as ModelCard).tabagent.engine).toBe("llama-server");
      // Loaded first: while the child starts, a request past the queue is a 503 model_loading instead.
      await d.client.completions.create({ model: "tiny-chat", prompt: "x", max_tokens: 1, temperature: 0 });
      const body = { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0, stream: true };
      const controllers = Array.from({ length: 3 }, () => new AbortController());
      const open = controllers.map((c) =>
        fetch(`${d.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: c.signal }).catch(
          () => null,
        ),
      );
      await until(async () => {
        const s = await status();
        return s.running === 2 && s.queued === 1;
      }, 15_000);
      const r = await postJson(`${d.url}/v1/chat/completions`, { ...body, stream: false, max_tokens: 1 });
      expect(r.status).toBe(429);
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      for (const c of controllers) c.abort();
      await Promise.all(open);
      await until(async () => {
        const s = await status();
        return s.running === 0 && s.queued === 0;
      }, 3_000);
      // The child's slots are free again: both can take a request at once.
      const again = await Promise.all(
        [1, 2].map(() => d.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 })),
      );
      expect(again.map((a) => a.choices[0]!.finish_reason)).toEqual(["length", "length"]);
    } finally {
      await d.close();
    }
  });
});

async function startFixtures() {
  return (await import("../fixtures/ensureFixtures.js")).ensureFixtures();
}
