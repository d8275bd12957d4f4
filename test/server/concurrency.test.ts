import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ parallel: 4, queueSize: 1, contextSize: 2048 });
});
afterAll(async () => {
  await t?.close();
});

interface Health {
  models: { id: string; state: string; running: number; queued: number }[];
}
async function chatStatus() {
  const h = (await (await fetch(`${t.url}/health`)).json()) as Health;
  return h.models.find((m) => m.id === "tiny-chat")!;
}

async function waitFor(cond: () => Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition not met in time");
}

const prompts = ["Hello", "The cat", "Good morning", "What is this?"];

describe("end of generation", () => {
  it("a model that ends its turn finishes with stop, streamed or not", async () => {
    // The fixture rarely samples its end token; some seed among the first few does (deterministically).
    const body = { model: "tiny-chat", messages: [{ role: "user" as const, content: "Hello" }], max_tokens: 400, temperature: 1 };
    let stopped: { seed: number; text: string; tokens: number } | null = null;
    for (let seed = 1; seed <= 20 && !stopped; seed++) {
      const r = await t.client.chat.completions.create({ ...body, seed });
      if (r.choices[0]!.finish_reason === "stop") stopped = { seed, text: r.choices[0]!.message.content!, tokens: r.usage!.completion_tokens };
      else expect(r.usage!.completion_tokens).toBe(400);
    }
    expect(stopped).not.toBeNull();
    expect(stopped!.tokens).toBeLessThan(400);
    const s = await t.client.chat.completions.create({ ...body, seed: stopped!.seed, stream: true });
    let reason: string | null = null;
    let text = "";
    for await (const c of s) {
      reason = c.choices[0]?.finish_reason ?? reason;
      text += c.choices[0]?.delta.content ?? "";
    }
    expect(reason).toBe("stop");
    expect(text).toBe(stopped!.text);
  });
});

describe("concurrency and cancellation", () => {
  it("runs 4 streams at once; each completes with the text it gets alone", async () => {
    const alone: string[] = [];
    for (const p of prompts) {
      const r = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: p }], max_tokens: 24, temperature: 0 });
      alone.push(r.choices[0]!.message.content!);
    }
    let peak = 0;
    const together = await Promise.all(
      prompts.map(async (p) => {
        const s = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: p }], max_tokens: 24, temperature: 0, stream: true });
        let text = "";
        let reason: string | null = null;
        for await (const c of s) {
          text += c.choices[0]?.delta.content ?? "";
          reason = c.choices[0]?.finish_reason ?? reason;
          peak = Math.max(peak, (await chatStatus()).running);
        }
        return { text, reason };
      }),
    );
    expect(together.map((r) => r.reason)).toEqual(["length", "length", "length", "length"]);
    expect(together.map((r) => r.text)).toEqual(alone);
    expect(peak).toBeGreaterThan(1);
  });

  it("aborting mid-stream frees the slot; the next request succeeds", async () => {
    const controller = new AbortController();
    const s = await t.client.chat.completions.create(
      { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 2000, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let n = 0;
    try {
      for await (const _ of s) {
        if (++n === 3) controller.abort();
      }
    } catch {
      // the SDK may end the iteration or throw an abort error: either way the stream is cut
    }
    expect(n).toBeLessThan(100);
    await waitFor(async () => (await chatStatus()).running === 0, 2000);
    const r = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe("length");
  });

  it("a client that disconnects from a non-streaming request also frees its slot", async () => {
    const controller = new AbortController();
    const pending = fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0 }),
      signal: controller.signal,
    }).catch(() => null);
    await waitFor(async () => (await chatStatus()).running === 1);
    controller.abort();
    await pending;
    await waitFor(async () => (await chatStatus()).running === 0, 2000);
  });

  it("past the slots and the queue: 429 with Retry-After", async () => {
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    // Greedy: a sampled answer may end early (each request gets a fresh seed) before the slots are seen full.
    const body = { model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 1900, temperature: 0, stream: true };
    const open = controllers.map((c) =>
      fetch(`${t.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: c.signal }).catch(
        () => null,
      ),
    );
    await waitFor(async () => {
      const s = await chatStatus();
      return s.running === 4 && s.queued === 1;
    });
    const r = await postJson(`${t.url}/v1/chat/completions`, { ...body, stream: false, max_tokens: 1 });
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(r.json.error).toMatchObject({ type: "rate_limit_error", code: "queue_full" });
    for (const c of controllers) c.abort();
    await Promise.all(open);
    await waitFor(async () => {
      const s = await chatStatus();
      return s.running === 0 && s.queued === 0;
    });
  });
});
