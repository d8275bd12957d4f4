import OpenAI from "openai";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";
import { runCli, startServe, type ServeProcess } from "../helpers/spawnCli.js";

let fixtures: FixturePaths;
const started: ServeProcess[] = [];
beforeAll(async () => {
  fixtures = await ensureFixtures();
});
afterEach(() => {
  for (const s of started.splice(0)) s.child.kill("SIGKILL");
});

describe("tabagent CLI", () => {
  it("models lists id, task, architecture, size and path", async () => {
    const r = await runCli(["models", "--models-dir", fixtures.dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tiny-chat\s+gguf\s+chat\s+node-llama-cpp\s+llama\s+\d+\.\d KiB\s+\S+tiny-chat\.gguf/);
    expect(r.stdout).toMatch(/tiny-embed\s+gguf\s+embeddings\s+node-llama-cpp\s+bert/);
    const json = await runCli(["models", "--model", `x=${fixtures.chatModelPath}`, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject([{ id: "x", task: "chat", engine: "node-llama-cpp", detection: { format: "gguf" } }]);
  });

  it.each([
    [["serve", "--port", "abc"], /port \(from --port\)/],
    [["serve", "--threads", "0"], /threads \(from --threads\)/],
    [["serve", "--bogus"], /Unknown option '--bogus'/],
    [["serve", "--model", "/no/such/file.gguf"], /cannot serve \/no\/such\/file\.gguf/],
    [["frobnicate"], /unknown command 'frobnicate'/],
  ])("refuses bad input before starting: %j", async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("refuses a bad environment value naming the variable", async () => {
    const r = await runCli(["serve"], { TABAGENT_IDLE_TTL: "soon" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/idleTtlSeconds \(from TABAGENT_IDLE_TTL\)/);
  });

  it("refuses a file that is not GGUF", async () => {
    const r = await runCli(["models", "--model", new URL("../../package.json", import.meta.url).pathname]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a model \(package\.json: no known magic bytes/);
  });

  it("SIGTERM lets an in-flight stream finish, then exits 0", async () => {
    const s = await startServe(["--model", fixtures.chatModelPath, "--context-size", "2048"]);
    started.push(s);
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "tiny-chat",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 900,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let pieces = 0;
    let reason: string | null = null;
    let completionTokens = 0;
    for await (const c of stream) {
      if (pieces++ === 1) s.child.kill("SIGTERM");
      reason = c.choices[0]?.finish_reason ?? reason;
      completionTokens = c.usage?.completion_tokens ?? completionTokens;
    }
    expect(reason).toBe("length");
    expect(completionTokens).toBe(900);
    const result = await s.child;
    expect(result.exitCode).toBe(0);
    expect(s.logs.join("\n")).toMatch(/shutdown complete/);
    await expect(fetch(`${s.url}/health`)).rejects.toThrow();
  });

  it("unloads a model after the idle TTL and loads it again on demand", async () => {
    const s = await startServe(["--model", fixtures.chatModelPath, "--idle-ttl", "1"]);
    started.push(s);
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "x", maxRetries: 0 });
    await client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
    const loaded = async () => ((await (await fetch(`${s.url}/health`)).json()) as { loaded: string[] }).loaded;
    expect(await loaded()).toEqual(["tiny-chat"]);
    await new Promise((r) => setTimeout(r, 1600));
    expect(await loaded()).toEqual([]);
    await client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
    expect(await loaded()).toEqual(["tiny-chat"]);
    s.child.kill("SIGINT");
    expect((await s.child).exitCode).toBe(0);
  });
});

describe("tabagent doctor", () => {
  it("reports node-llama-cpp and the llama-server binaries with where each was looked for", async () => {
    const r = await runCli(["doctor", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.stringify(report)).toMatch(/3\.21\.1/);
    const human = await runCli(["doctor"]);
    expect(human.stdout).toMatch(/llama-server\s/);
    expect(human.stdout).toMatch(/llama-server-bitnet/);
  });
});
