import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyChatModel, TINY_CHAT_TEMPLATE } from "../fixtures/makeTinyChatModel.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

// Model files are someone else's: a hostile chat template or a corrupt vocabulary must cost that model, not the daemon.
const HOSTILE_TEMPLATE = TINY_CHAT_TEMPLATE + "{% for i in range(30000000) %}{% endfor %}";

/** tiny-chat.gguf with one byte of the `<0x0A>` token's text set to 0: llama.cpp's byte_to_token then throws std::out_of_range. */
async function byteFlippedGguf(dir: string): Promise<string> {
  const data = await readFile((await ensureFixtures()).chatModelPath);
  const at = data.indexOf(Buffer.from("<0x0A>"));
  expect(at).toBeGreaterThan(0);
  data[at] = 0;
  const path = join(dir, "flipped.gguf");
  await writeFile(path, data);
  return path;
}

async function timedHealth(url: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - started };
}

describe("hostile model files", () => {
  let t: TestDaemon;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tabagent-hostile-"));
    const hostile = join(dir, "hostile-template.gguf");
    await writeFile(hostile, makeTinyChatModel({ chatTemplate: HOSTILE_TEMPLATE }));
    t = await startTestDaemon({ dataDir: join(dir, "data") }, [
      { id: "hostile", path: hostile },
      { id: "flipped", path: await byteFlippedGguf(dir) },
    ]);
  });

  afterAll(async () => {
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("a chat template that exhausts memory fails its request; the daemon keeps answering meanwhile", async () => {
    const request = postJson(`${t.url}/v1/chat/completions`, { model: "hostile", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    // Health answers promptly while the template runs (and fails) out of the daemon's way.
    const probes: { status: number; ms: number }[] = [];
    let done = false;
    void request.finally(() => (done = true));
    while (!done) {
      probes.push(await timedHealth(t.url));
      await new Promise((r) => setTimeout(r, 50));
    }
    const res = await request;
    expect(res.status).toBe(500);
    expect(res.json.error).toMatchObject({ type: "server_error", code: "chat_template_unusable" });
    expect(res.json.error!.message).toMatch(/'hostile' is unusable: (rendering it needs more than \d+ MiB of memory|rendering it took more than)/);
    expect(probes.length).toBeGreaterThan(0);
    for (const p of probes) {
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(1_000);
    }
  });

  it("the unusable template is reported in /v1/models and refused at once; completions still work", async () => {
    const models = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; tabagent: Record<string, unknown> }[] };
    const entry = models.data.find((m) => m.id === "hostile")!;
    expect(entry.tabagent["chat_template_error"]).toMatch(/memory|took more than/);
    const started = performance.now();
    const again = await postJson(`${t.url}/v1/chat/completions`, { model: "hostile", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    expect(again.status).toBe(500);
    expect(again.json.error?.code).toBe("chat_template_unusable");
    expect(performance.now() - started).toBeLessThan(1_000);
    const completion = await t.client.completions.create({ model: "hostile", prompt: "hello", max_tokens: 4, temperature: 0 });
    expect(completion.choices[0]!.finish_reason).toBeDefined();
  });

  it("a GGUF whose vocabulary aborts llama.cpp is refused with 503 model_load_failed; the daemon and other models serve", async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: "flipped", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    expect(res.status).toBe(503);
    expect(res.json.error).toMatchObject({ code: "model_load_failed" });
    expect(res.json.error!.message).toMatch(/crashed reading it \(SIGABRT: 'std::out_of_range'/);
    expect((await timedHealth(t.url)).status).toBe(200);
    const ok = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 });
    expect(ok.choices[0]!.message.content).toBeTypeOf("string");
    // Asked again: refused again, from the cached verdict, without a second crash.
    const again = await postJson(`${t.url}/v1/completions`, { model: "flipped", prompt: "hi", max_tokens: 4 });
    expect(again.status).toBe(503);
    expect(again.json.error?.code).toBe("model_load_failed");
  });
});
