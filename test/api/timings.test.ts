// llama-server's `timings` object on every engine: the daemon measures it itself, so each engine's answer carries
// the same fields, with counts equal to the answer's usage. One daemon serves a tiny llama on node-llama-cpp, ONNX
// and transformers, the tiny chat fixture on llama-server, plus an upstream (a second daemon) — the request asks; a second daemon has
// the config setting on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { ensureTinyLlm, ensureTinyLlmGguf, ensureTinyLlmOnnx, pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const MODELS = {
  "llm-llamacpp": "node-llama-cpp",
  "llm-server": "llama-server",
  "llm-onnx": "onnxruntime",
  "llm-transformers": "transformers",
  "up-tiny-chat": "upstream",
} as const;

interface Timings {
  prompt_n: number;
  prompt_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_second: number;
}
interface Answer {
  usage: { prompt_tokens: number; completion_tokens: number };
  timings?: Timings;
}

let upstream: TestDaemon;
let t: TestDaemon;
let byConfig: TestDaemon;

beforeAll(async () => {
  const [st, gguf, onnx, python, server, fixtures] = await Promise.all([
    ensureTinyLlm(),
    ensureTinyLlmGguf(),
    ensureTinyLlmOnnx(),
    pythonExecutable(),
    llamaServerBinary(),
    ensureFixtures(),
  ]);
  upstream = await startTestDaemon({}, [], {});
  t = await startTestDaemon(
    {
      contextSize: 512,
      models: [
        { id: "llm-llamacpp", path: gguf, engine: "node-llama-cpp" },
        // The tiny llama's template does not suit llama-server's chat parser: the daemon's tiny chat fixture does.
        { id: "llm-server", path: fixtures.chatModelPath, engine: "llama-server" },
        { id: "llm-onnx", path: onnx.dir },
        { id: "llm-transformers", path: st },
      ],
      upstreams: [{ name: "up", baseUrl: `${upstream.url}/v1`, models: ["tiny-chat"], prefix: "up-" }],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python, TABAGENT_LLAMA_SERVER: server },
  );
  byConfig = await startTestDaemon({ timings: true }, [], {});
}, 300_000);

afterAll(async () => {
  await t?.close();
  await byConfig?.close();
  await upstream?.close();
});

function expectTimings(timings: Timings | undefined, usage: Answer["usage"]) {
  expect(timings).toBeDefined();
  const x = timings!;
  expect(Object.keys(x).sort()).toEqual(["predicted_ms", "predicted_n", "predicted_per_second", "prompt_ms", "prompt_n", "prompt_per_second"]);
  expect(x.prompt_n).toBe(usage.prompt_tokens);
  expect(x.predicted_n).toBe(usage.completion_tokens);
  expect(x.prompt_ms).toBeGreaterThan(0);
  expect(x.predicted_ms).toBeGreaterThanOrEqual(0);
  expect(x.prompt_per_second).toBeCloseTo((x.prompt_n * 1000) / x.prompt_ms, 0);
  if (x.predicted_ms > 0) expect(x.predicted_per_second).toBeCloseTo((x.predicted_n * 1000) / x.predicted_ms, 0);
}

/** The SSE payloads of a streamed answer, [DONE] excluded. */
function chunks(text: string): (Answer & { choices: { finish_reason: string | null }[] })[] {
  return text
    .split("\n\n")
    .map((b) => b.trim())
    .filter((b) => b.startsWith("data: ") && b !== "data: [DONE]")
    .map((b) => JSON.parse(b.slice(6)) as Answer & { choices: { finish_reason: string | null }[] });
}

describe.each(Object.entries(MODELS))("timings on %s (%s)", (model) => {
  const chat = { model, messages: [{ role: "user", content: "Hello there" }], max_tokens: 8, temperature: 0 };

  it("a non-streamed chat answer carries them when asked, and not otherwise", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, { ...chat, timings: true });
    expect(r.status, r.text).toBe(200);
    const answer = r.json as unknown as Answer;
    expectTimings(answer.timings, answer.usage);
    const plain = (await postJson(`${t.url}/v1/chat/completions`, chat)).json as unknown as Answer;
    expect(plain).not.toHaveProperty("timings");
  });

  it("a streamed answer carries them on its final chunk only (the usage chunk with include_usage, else the finish)", async () => {
    const withUsage = chunks(
      (
        await postJson(`${t.url}/v1/completions`, {
          model,
          prompt: "The sky is",
          max_tokens: 8,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
          timings: true,
        })
      ).text,
    );
    const last = withUsage.at(-1)!;
    expect(last.choices).toEqual([]);
    expectTimings(last.timings, last.usage);
    expect(withUsage.slice(0, -1).every((c) => c.timings === undefined)).toBe(true);

    const bare = chunks((await postJson(`${t.url}/v1/chat/completions`, { ...chat, stream: true, timings: true })).text);
    const final = bare.at(-1)!;
    expect(final.choices[0]!.finish_reason).not.toBeNull();
    expect(final.timings!.predicted_n).toBeGreaterThan(0);
    expect(bare.slice(0, -1).every((c) => c.timings === undefined)).toBe(true);
  });
});

describe("the config setting", () => {
  it("puts timings on every answer unless the request says timings: false", async () => {
    const on = (await postJson(`${byConfig.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 3, temperature: 0 })).json as unknown as Answer;
    expectTimings(on.timings, on.usage);
    const off = (await postJson(`${byConfig.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 3, temperature: 0, timings: false })).json;
    expect(off).not.toHaveProperty("timings");
  });

  it("a timings value that is not a boolean is a 400 naming it", async () => {
    const r = await postJson(`${byConfig.url}/v1/chat/completions`, { model: "tiny-chat", messages: [{ role: "user", content: "Hi" }], timings: "yes" });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: "timings", code: "invalid_value" });
  });
});
