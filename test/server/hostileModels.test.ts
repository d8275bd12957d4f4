import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { GgufProbe } from "../../src/backends/llamacpp/GgufProbe.js";
import { LlamaProvider } from "../../src/backends/llamacpp/LlamaProvider.js";
import { NodeLlamaCppBackend } from "../../src/backends/llamacpp/NodeLlamaCppBackend.js";
import { ModelLoadError } from "../../src/core/errors.js";
import { makeTinyChatModel, TINY_CHAT_TEMPLATE } from "../fixtures/makeTinyChatModel.js";
import { testDescriptor } from "../helpers/testDescriptor.js";
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
    const found = join(dir, "found");
    await mkdir(found);
    await byteFlippedGguf(found);
    t = await startTestDaemon({ dataDir: join(dir, "data"), modelsDirs: [found] }, [{ id: "hostile", path: hostile }]);
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

  it("a GGUF whose vocabulary would abort llama.cpp is not served from a models folder; the daemon and other models serve", async () => {
    const models = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).not.toContain("flipped"); // skipped at discovery, with a warning in the log
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: "flipped", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    expect(res.status).toBe(404);
    expect((await timedHealth(t.url)).status).toBe(200);
    const ok = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 });
    expect(ok.choices[0]!.message.content).toBeTypeOf("string");
  });

  it("past detection, the load probe turns llama.cpp's abort into a ModelLoadError and this process lives on", async () => {
    // The engine as the daemon builds it, given the file directly: what a corruption detection does not know would meet.
    const path = await byteFlippedGguf(dir);
    const logger = pino({ level: "silent" });
    const provider = new LlamaProvider({ gpu: "off", threads: 1, logger });
    const probe = new GgufProbe({ logger, cacheFile: join(dir, "probes.json") });
    const backend = new NodeLlamaCppBackend(testDescriptor({ id: "flipped", path }), {
      provider,
      logger,
      threads: 1,
      contextSize: 256,
      parallel: 1,
      gpuLayers: 0,
      probe,
    });
    const failure = await backend.load(AbortSignal.timeout(60_000)).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ModelLoadError);
    expect((failure as Error).message).toMatch(/crashed reading it \(SIGABRT: 'std::out_of_range': _Map_base::at\)/);
    // The verdict is kept: a second daemon refuses without probing again.
    const again = new GgufProbe({ logger, cacheFile: join(dir, "probes.json") });
    const started = performance.now();
    expect((await again.check(path)).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(200);
    await provider.dispose();
  });
});
