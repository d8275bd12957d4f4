// Continuous batching in the transformers sidecar (native/python/tabagent_sidecar/batching.py): concurrent requests to
// one model decode as rows of one batch, and each still gets what it would get alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pidsMatching } from "../../helpers/llamaServerBinary.js";
import { ensureTinyLlm, pythonExecutable } from "../../fixtures/ensurePythonFixtures.js";
import { startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { argAfter, childProcessInfo, rawRequest } from "../llamaServer/childProbe.js";

const MODEL = "hf-batch";
let t: TestDaemon;

interface SidecarHealth {
  active: number;
  batch?: { rows: number; peak_rows: number; steps: number };
}

async function sidecarHealth(): Promise<SidecarHealth> {
  const pids = await pidsMatching(`--id ${MODEL} `);
  expect(pids.length).toBe(1);
  const { argv, env } = await childProcessInfo(pids[0]!);
  const res = await rawRequest({ socketPath: argAfter(argv, "--socket")! }, { path: "/health", headers: { authorization: `Bearer ${env.TABAGENT_SIDECAR_KEY}` } });
  return JSON.parse(res.body) as SidecarHealth;
}

interface Ask {
  prompt: string;
  max_tokens: number;
  temperature: number;
  seed?: number;
  stop?: string[];
}

async function streamed(ask: Ask, signal?: AbortSignal, chunks = Number.POSITIVE_INFINITY): Promise<{ text: string; finish: string | null; tokens: number }> {
  let text = "";
  let finish: string | null = null;
  let tokens = 0;
  let seen = 0;
  const stream = await t.client.completions.create({ model: MODEL, ...ask, stream: true, stream_options: { include_usage: true } }, { signal });
  for await (const c of stream) {
    text += c.choices[0]?.text ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
    if (c.usage) tokens = c.usage.completion_tokens;
    if (++seen >= chunks) break;
  }
  return { text, finish, tokens };
}

async function alone(ask: Ask): Promise<{ text: string; finish: string | null; tokens: number }> {
  const r = await t.client.completions.create({ model: MODEL, ...ask });
  return { text: r.choices[0]!.text, finish: r.choices[0]!.finish_reason, tokens: r.usage!.completion_tokens };
}

beforeAll(async () => {
  const [llm, python] = await Promise.all([ensureTinyLlm(), pythonExecutable()]);
  t = await startTestDaemon({ contextSize: 2048, parallel: 8, models: [{ id: MODEL, path: llm }] }, [], { ...process.env, TABAGENT_PYTHON: python });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe("transformers continuous batching", () => {
  it("eight concurrent requests (greedy and seeded, prompts of different lengths) share the decode loop and each gets its answer alone", async () => {
    const asks: Ask[] = [
      { prompt: "The sky is", max_tokens: 120, temperature: 0 },
      { prompt: "Hello world! How are you today? I am fine, thank you.", max_tokens: 165, temperature: 0 },
      { prompt: "Once upon a time there was a cat", max_tokens: 90, temperature: 0 },
      { prompt: "Numbers: 1 2", max_tokens: 180, temperature: 0 },
      { prompt: "Cities: Paris, Tokyo,", max_tokens: 135, temperature: 0.9, seed: 7 },
      { prompt: "A", max_tokens: 150, temperature: 0.7, seed: 123 },
      { prompt: "Streaming text arrives token by token", max_tokens: 105, temperature: 1, seed: 99 },
      { prompt: "Names: Alice, Bob,", max_tokens: 192, temperature: 0 },
    ];
    const reference = [];
    for (const ask of asks) reference.push(await alone(ask));
    expect((await sidecarHealth()).batch).toBeDefined();
    const together = await Promise.all(asks.map((ask) => streamed(ask)));
    // Bit-identical on the tiny fixture: its greedy margins are wide, and a seeded row samples with its own generator.
    expect(together).toEqual(reference);
    const after = await sidecarHealth();
    expect(after.batch!.peak_rows).toBeGreaterThanOrEqual(4);
    expect(after.batch!.rows).toBe(0);
    expect(after.active).toBe(0);
  });

  it("inside a batch, a stop sequence and max_tokens end their own row, and a cancelled stream leaves without disturbing the rest", async () => {
    const long: Ask = { prompt: "Once upon a time", max_tokens: 300, temperature: 0 };
    const full = await alone(long);
    const stopAt = full.text.slice(20, 24);
    expect(stopAt.length).toBe(4);
    const stopped: Ask = { ...long, stop: [stopAt] };
    const short: Ask = { prompt: "The quick brown fox", max_tokens: 5, temperature: 0 };
    const [refStopped, refShort] = [await alone(stopped), await alone(short)];
    expect(refStopped.finish).toBe("stop");
    expect(refStopped.text).toBe(full.text.slice(0, full.text.indexOf(stopAt)));

    const controller = new AbortController();
    const cancelled = streamed({ prompt: "Hello world", max_tokens: 1500, temperature: 0 }, controller.signal, 4);
    const results = Promise.all([streamed(long), streamed(stopped), streamed(short), streamed(long)]);
    await cancelled;
    controller.abort();
    expect(await results).toEqual([full, refStopped, refShort, full]);
    const deadline = Date.now() + 3_000;
    let health = await sidecarHealth();
    while ((health.active !== 0 || health.batch!.rows !== 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      health = await sidecarHealth();
    }
    expect(health).toMatchObject({ active: 0, batch: { rows: 0 } });
  });

  it("n choices with logprobs join a batch with other requests and answer as they do alone", async () => {
    const request = { model: MODEL, prompt: "The sky is", max_tokens: 12, temperature: 0.8, seed: 5, n: 3, logprobs: 2 };
    const ref = await t.client.completions.create(request);
    const [got] = await Promise.all([
      t.client.completions.create(request),
      alone({ prompt: "Hello world", max_tokens: 40, temperature: 0 }),
      alone({ prompt: "Numbers", max_tokens: 40, temperature: 0 }),
    ]);
    expect(got.choices.map((c) => c.text)).toEqual(ref.choices.map((c) => c.text));
    const lps = (r: typeof ref) => r.choices.map((c) => c.logprobs!.token_logprobs!.map((x) => x.toFixed(4)));
    expect(lps(got)).toEqual(lps(ref));
    expect(got.usage).toEqual(ref.usage);
  });

  it("grammar-constrained rows (json_schema, a forced tool call) decode in a batch beside free text, each as it does alone", async () => {
    const schema = {
      type: "object",
      properties: { city: { type: "string", maxLength: 12 }, n: { type: "integer" } },
      required: ["city", "n"],
      additionalProperties: false,
    };
    const json = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "Give a city." }],
      max_tokens: 60,
      temperature: 0,
      response_format: { type: "json_schema" as const, json_schema: { name: "c", schema, strict: true } },
    };
    const tool = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "Weather?" }],
      max_tokens: 60,
      temperature: 0,
      tools: [
        {
          type: "function" as const,
          function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string", maxLength: 10 } }, required: ["city"] } },
        },
      ],
      tool_choice: "required" as const,
    };
    const free = { model: MODEL, messages: [{ role: "user" as const, content: "Hello" }], max_tokens: 50, temperature: 0 };
    const refJson = await t.client.chat.completions.create(json);
    const refTool = await t.client.chat.completions.create(tool);
    const refFree = await t.client.chat.completions.create(free);
    const [a, b, c, d] = await Promise.all([
      t.client.chat.completions.create(json),
      t.client.chat.completions.create(tool),
      t.client.chat.completions.create(free),
      t.client.chat.completions.create(json),
    ]);
    for (const r of [a, d]) {
      expect(r.choices[0]!.message.content).toBe(refJson.choices[0]!.message.content);
      expect(Object.keys(JSON.parse(r.choices[0]!.message.content!) as object).sort()).toEqual(["city", "n"]);
    }
    const call = b.choices[0]!.message.tool_calls![0]! as { function: { name: string; arguments: string } };
    expect(call.function).toEqual((refTool.choices[0]!.message.tool_calls![0]! as { function: unknown }).function);
    expect(call.function.name).toBe("weather");
    expect(c.choices[0]!.message.content).toBe(refFree.choices[0]!.message.content);
  });
});
