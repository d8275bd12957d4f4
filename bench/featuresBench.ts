// `npm run bench -- structured` and `npm run bench -- sampling`: what a request feature costs in decode speed, per
// engine, against the same request without it, in one daemon serving one model per engine:
//   structured  response_format json_schema (a grammar-constrained answer) vs no constraint, same max_tokens; plus
//               the first request's grammar compile (TTFT of a request bringing a new schema minus the median TTFT of
//               later requests with that schema);
//   sampling    logprobs: true, top_logprobs: 5 vs without; and n: 4 (one request, aggregate tok/s) vs 4 concurrent
//               n: 1 requests.
// Each comparison has an A/A control: the baseline runs twice per round, and the ratio of its two copies shows how
// far from 1 "no difference" measures on this machine. Conditions rotate within every round. Engines: node-llama-cpp
// and llama-server on the tiny-chat GGUF fixture, onnxruntime on the tiny ONNX LLM, transformers on the tiny
// safetensors LLM (same weights as the ONNX one). An engine whose capability table lacks a feature is reported "not
// supported" and not loaded. Targets print PASS/MISS; the exit code is 1 only if a measurement broke.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type OpenAI from "openai";
import { APIError } from "openai";
import type { EngineName } from "../src/core/detectionSchema.js";
import type { Capability } from "../src/engines/capabilities.js";
import { ENGINES } from "../src/engines/engineTable.js";
import { findLlamaServer } from "../src/native/findLlamaServer.js";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { ensureTinyLlm, ensureTinyLlmGguf, ensureTinyLlmOnnx } from "../test/fixtures/ensurePythonFixtures.js";
import { addedUsPerToken, firstRequestOverheadMs, ratioWithNoise, roundOrder, verdict, wholeRate, type RatioWithNoise, type Verdict } from "./featureStats.js";
import { openaiClient, startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { table } from "./report.js";
import { median, summarize } from "./stats.js";
import type { RunSample, StreamSample } from "./types.js";

type Suite = "structured" | "sampling";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const ALL_ENGINES = ["node-llama-cpp", "llama-server", "onnxruntime", "transformers"] as const satisfies readonly EngineName[];
type BenchEngine = (typeof ALL_ENGINES)[number];
const TARGETS = { structured: 0.9, logprobs: 0.9, choices: 1.0 } as const;
const CHOICES = 4;
/** A baseline whose median inter-chunk gap is below this arrives in coalesced bursts: its decode rate is not a rate. */
const BURSTY_ITL_MS = 0.05;
const TOP_LOGPROBS = 5;
/** Short enum strings the constrained answer is made of. */
const WORDS = ["red", "green", "blue", "amber", "teal", "violet", "black", "white"];

const helpText = (suite: Suite) => `npm run bench -- ${suite} [options]

  --rounds N        rounds per engine; every condition runs once per round, in rotating order (default 40;
                    --rounds 3 is the quick mode, a few minutes on 2 cores)
  --max-tokens N    tokens per choice (default 128)
  --threads N       threads of every engine (default 1)
  --engines LIST    comma-separated, of ${ALL_ENGINES.join(", ")} (default: all)
  --gguf PATH       GGUF model of node-llama-cpp and llama-server (default: the tiny-chat test fixture)
  --hidden N --layers N   a larger generated model (make_tiny_llm.py, 8 heads, 4 KV heads; e.g. 512 and 8, as the
                    engines suite): ONNX, transformers and, unless --gguf is given, the GGUF engines (as GGUF F32) all
                    run it (default: the test fixtures)
${suite === "structured" ? "  --items N        minItems of the schema's array of enum strings (default: max-tokens / 2)\n" : ""}  --llama-server PATH  llama-server binary (default: TABAGENT_LLAMA_SERVER, then the build cache)
  --json            print the results as JSON
`;

interface Options {
  rounds: number;
  maxTokens: number;
  threads: number;
  engines: BenchEngine[];
  items: number;
  binary: string | null;
  gguf: string | null;
  /** make_tiny_llm.py arguments for a larger model; empty = the test fixtures. */
  size: string[];
  json: boolean;
}

function parseOptions(suite: Suite, argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      rounds: { type: "string" },
      "max-tokens": { type: "string" },
      threads: { type: "string" },
      engines: { type: "string" },
      ...(suite === "structured" ? { items: { type: "string" as const } } : {}),
      "llama-server": { type: "string" },
      gguf: { type: "string" },
      hidden: { type: "string" },
      layers: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  const engines = values.engines === undefined ? [...ALL_ENGINES] : values.engines.split(",").map((e) => e.trim());
  for (const e of engines) if (!(ALL_ENGINES as readonly string[]).includes(e)) throw new Error(`--engines: unknown engine '${e}'`);
  const maxTokens = integer("max-tokens", values["max-tokens"], 128, 2);
  const items = "items" in values && typeof values.items === "string" ? values.items : undefined;
  return {
    rounds: integer("rounds", values.rounds, 40),
    maxTokens,
    threads: integer("threads", values.threads, 1),
    engines: engines as BenchEngine[],
    items: integer("items", items, Math.max(1, Math.ceil(maxTokens / 2))),
    binary: values["llama-server"] ?? null,
    gguf: values.gguf === undefined ? null : resolve(values.gguf),
    size:
      values.hidden === undefined && values.layers === undefined
        ? []
        : ["--hidden", String(integer("hidden", values.hidden, 512, 16)), "--layers", String(integer("layers", values.layers, 8)), "--heads", "8", "--kv-heads", "4"],
    json: values.json === true,
  };
}

/** A schema that needs at least `items` enum strings: with one token or more per item it outlasts max_tokens = 2 × items. */
export function listSchema(key: string, items: number): Record<string, unknown> {
  return {
    type: "object",
    properties: { [key]: { type: "array", items: { type: "string", enum: WORDS }, minItems: items } },
    required: [key],
    additionalProperties: false,
  };
}

/** A fresh schema per round, same shape and length: only the property's name (3 characters) differs. */
const roundKey = (round: number) => `k${String(round % 100).padStart(2, "0")}`;

type Extra = Omit<OpenAI.ChatCompletionCreateParamsStreaming, "model" | "messages" | "max_tokens" | "stream">;

const jsonSchemaFormat = (name: string, schema: Record<string, unknown>): Extra => ({
  response_format: { type: "json_schema", json_schema: { name, schema, strict: true } },
});

interface Reply {
  /** One sample per choice, tokens counted per choice (max_tokens for a choice that finished on length). */
  run: RunSample;
  finishReasons: (string | null)[];
  usageTokens: number;
}

/** One streamed chat completion with extra parameters; content arrivals are timestamped per choice. */
async function request(client: OpenAI, model: string, prompt: string, maxTokens: number, extra: Extra, startMs = performance.now()): Promise<Reply> {
  const n = extra.n ?? 1;
  const choices = Array.from({ length: n }, () => ({ arrivalsMs: [] as number[], text: "", finish: null as string | null }));
  let usage: OpenAI.CompletionUsage | null = null;
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: prompt }],
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    ...extra,
  });
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      const choice = choices[c.index];
      if (!choice) throw new Error(`a chunk for choice ${c.index} of a request for ${n}`);
      if (c.delta.content) {
        choice.arrivalsMs.push(performance.now());
        choice.text += c.delta.content;
      }
      if (c.finish_reason) choice.finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  if (!usage) throw new Error("the stream ended without a usage chunk");
  const promptTokens = usage.prompt_tokens;
  const run: StreamSample[] = choices.map((c) => ({
    startMs,
    arrivalsMs: c.arrivalsMs,
    completionTokens: n === 1 ? usage.completion_tokens : c.finish === "length" ? maxTokens : c.arrivalsMs.length,
    promptTokens,
    text: c.text,
  }));
  return { run, finishReasons: choices.map((c) => c.finish), usageTokens: usage.completion_tokens };
}

/** `count` requests issued at the same instant, merged into one run (TTFT of each counts from that instant). */
async function concurrent(count: number, send: (startMs: number) => Promise<Reply>): Promise<Reply> {
  const startMs = performance.now();
  const replies = await Promise.all(Array.from({ length: count }, () => send(startMs)));
  return { run: replies.flatMap((r) => r.run), finishReasons: replies.flatMap((r) => r.finishReasons), usageTokens: replies.reduce((s, r) => s + r.usageTokens, 0) };
}

interface Condition {
  name: string;
  send: (round: number) => Promise<Reply>;
  /** Every choice must generate max_tokens (an unconstrained baseline); a constrained answer may stop once complete. */
  mustFill: boolean;
}

interface ComparisonSpec {
  name: string;
  capability: Capability;
  treatment: string;
  baseline: string;
  baselineAgain: string;
  target: number;
}

interface Comparison {
  name: string;
  target: number;
  /** The rate the verdict is on: decode, unless the baseline's chunks arrived in bursts (then whole-request). */
  metric: "decode" | "whole";
  decode: RatioWithNoise;
  whole: RatioWithNoise;
  /** From the verdict's metric: 1e6 / treatment - 1e6 / baseline. */
  addedUsPerToken: number;
  verdict: Verdict;
}

interface ConditionResult {
  name: string;
  decodeTokPerSec: number;
  decodeTokPerSecRuns: number[];
  /** Tokens / (last content - request start), median over rounds, and per round. */
  wholeTokPerSec: number;
  wholeTokPerSecRuns: number[];
  ttftP50Ms: number;
  itlP50Ms: number;
  /** Median generated tokens per run (all choices). */
  tokensPerRun: number;
  /** Runs where every choice finished on length. */
  fullRuns: string;
}

type EngineResult =
  | { engine: BenchEngine; status: "not supported"; reason: string }
  | { engine: BenchEngine; status: "failed"; reason: string }
  | {
      engine: BenchEngine;
      status: "measured";
      model: string;
      conditions: ConditionResult[];
      comparisons: Comparison[];
      /** Comparisons this engine lacks the capability for, with the reason. */
      skipped: { name: string; reason: string }[];
      compile: { firstTtftP50Ms: number; laterTtftP50Ms: number; overheadMs: number; unconstrainedTtftP50Ms: number } | null;
      sampleText: string;
    };

const COMPARISONS: Record<Suite, ComparisonSpec[]> = {
  structured: [
    {
      name: "json_schema / unconstrained",
      capability: "jsonSchema",
      treatment: "json_schema",
      baseline: "unconstrained",
      baselineAgain: "unconstrained again",
      target: TARGETS.structured,
    },
  ],
  sampling: [
    { name: "logprobs+top5 / plain", capability: "logprobs", treatment: "logprobs", baseline: "plain", baselineAgain: "plain again", target: TARGETS.logprobs },
    {
      name: `n=${CHOICES} / ${CHOICES} x n=1`,
      capability: "multipleChoices",
      treatment: `n=${CHOICES}`,
      baseline: `${CHOICES} x n=1`,
      baselineAgain: `${CHOICES} x n=1 again`,
      target: TARGETS.choices,
    },
  ],
};

const capable = (engine: BenchEngine, capability: Capability) => ENGINES[engine].capabilities[capability];

export async function runFeaturesSuite(suite: Suite, argv: string[]): Promise<number> {
  const progress = (message: string) => process.stderr.write(`[bench ${suite}] ${message}\n`);
  let o: Options | null;
  try {
    o = parseOptions(suite, argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${helpText(suite)}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(helpText(suite));
    return 0;
  }
  const options = o;
  const loadStart = loadavg()[0] ?? 0;
  const results: EngineResult[] = [];
  const todo: BenchEngine[] = [];
  for (const engine of options.engines) {
    const lacking = COMPARISONS[suite].filter((c) => !capable(engine, c.capability));
    if (lacking.length === COMPARISONS[suite].length) {
      results.push({ engine, status: "not supported", reason: `capability table: no ${lacking.map((c) => c.capability).join(", no ")}` });
    } else todo.push(engine);
  }

  // Models, one per engine that runs: made (and cached) by the test fixtures.
  const models: { id: string; engine: BenchEngine; path: string; llamaServerPath?: string }[] = [];
  const gguf = async () => options.gguf ?? (options.size.length > 0 ? await ensureTinyLlmGguf(options.size) : (await ensureFixtures(FIXTURES_DIR)).chatModelPath);
  for (const engine of todo) {
    try {
      if (engine === "node-llama-cpp") models.push({ id: "b-nlc", engine, path: await gguf() });
      else if (engine === "llama-server") {
        const found = options.binary ? { path: options.binary } : await findLlamaServer("standard", { env: process.env });
        if (found.path === null) throw new Error("no llama-server binary (native/build-llama-server.sh, TABAGENT_LLAMA_SERVER or --llama-server)");
        models.push({ id: "b-ls", engine, path: await gguf(), llamaServerPath: found.path });
      } else if (engine === "onnxruntime") {
        progress("ONNX fixture (export_onnx.py; cached after the first run)");
        models.push({ id: "b-onnx", engine, path: (await ensureTinyLlmOnnx(options.size.length > 0 ? { args: options.size } : {})).dir });
      } else {
        progress("transformers fixture (make_tiny_llm.py; cached after the first run)");
        models.push({ id: "b-tf", engine, path: await ensureTinyLlm(options.size) });
      }
    } catch (err) {
      results.push({ engine, status: "failed", reason: `fixture: ${(err as Error).message}` });
    }
  }

  const tmp = await mkdtemp(join(tmpdir(), `tabagent-bench-${suite}-`));
  let daemon: DaemonRunner | null = null;
  try {
    if (models.length > 0) {
      const configPath = join(tmp, "config.json");
      const config = {
        host: "127.0.0.1",
        port: 0,
        gpu: "off",
        threads: options.threads,
        contextSize: 2048,
        // n = 4 and 4 concurrent requests decode in one batch only with 4 sequences (slots) per model.
        parallel: CHOICES,
        idleTtlSeconds: 0,
        logLevel: "info",
        models: models.map((m) => ({ id: m.id, path: m.path, engine: m.engine, ...(m.llamaServerPath ? { llamaServerPath: m.llamaServerPath } : {}) })),
      };
      await writeFile(configPath, JSON.stringify(config, null, 2));
      progress(`starting bin/tabagent serve --config ${configPath} (threads ${options.threads}, parallel ${CHOICES})`);
      daemon = await startDaemon({ serveArgs: ["--config", configPath], modelId: models[0]!.id });
      const client = openaiClient(`${daemon.url}/v1`);
      for (const m of models) {
        progress(`${m.engine}: ${options.rounds} rounds`);
        try {
          results.push(await measureEngine(suite, options, client, m.id, m.engine, m.path, progress));
        } catch (err) {
          results.push({ engine: m.engine, status: "failed", reason: (err as Error).message });
        }
      }
    }
  } finally {
    const code = await daemon?.stop();
    if (code !== undefined && code !== 0) progress(`warning: the daemon exited with code ${code}`);
    await rm(tmp, { recursive: true, force: true });
  }

  const order = (e: BenchEngine) => options.engines.indexOf(e);
  results.sort((a, b) => order(a.engine) - order(b.engine));
  const loadEnd = loadavg()[0] ?? 0;
  const cpuList = cpus();
  const report = {
    suite,
    machine: { cpus: cpuList.length, cpuModel: cpuList[0]?.model.trim() ?? "unknown", node: process.version, loadAvg1mStart: loadStart, loadAvg1mEnd: loadEnd },
    setup: {
      models: models.map((m) => `${m.engine}: ${m.path}`),
      rounds: options.rounds,
      maxTokens: options.maxTokens,
      threads: options.threads,
      prompt: DEFAULT_PROMPT,
      ...(suite === "structured" ? { schemaMinItems: options.items } : {}),
    },
    results,
  };
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatFeatures(report)}\n`);
  return results.some((r) => r.status === "failed") ? 1 : 0;
}

async function measureEngine(
  suite: Suite,
  o: Options,
  client: OpenAI,
  modelId: string,
  engine: BenchEngine,
  modelPath: string,
  progress: (message: string) => void,
): Promise<EngineResult> {
  const prompt = DEFAULT_PROMPT;
  const send = (extra: Extra, startMs?: number) => request(client, modelId, prompt, o.maxTokens, extra, startMs);
  let conditions: Condition[] = [];
  let specs = COMPARISONS[suite].filter((c) => capable(engine, c.capability));
  const skipped = COMPARISONS[suite].filter((c) => !capable(engine, c.capability)).map((c) => ({ name: c.name, reason: `no ${c.capability} in the capability table` }));
  if (suite === "structured") {
    conditions.push(
      { name: "unconstrained", send: () => send({}), mustFill: true },
      { name: "unconstrained again", send: () => send({}), mustFill: true },
      { name: "json_schema", send: (r) => send(jsonSchemaFormat("list", listSchema(roundKey(r), o.items))), mustFill: false },
    );
  } else {
    if (specs.some((s) => s.capability === "logprobs")) {
      conditions.push(
        { name: "plain", send: () => send({}), mustFill: true },
        { name: "plain again", send: () => send({}), mustFill: true },
        { name: "logprobs", send: () => send({ logprobs: true, top_logprobs: TOP_LOGPROBS }), mustFill: true },
      );
    }
    if (specs.some((s) => s.capability === "multipleChoices")) {
      const spread = () => concurrent(CHOICES, (startMs) => send({}, startMs));
      conditions.push(
        // Several sequences decode in one batch, and the batch shapes llama.cpp's numerics: a near-tie can flip and a
        // stream end early at temperature 0. The rate is over the tokens generated; "full runs" shows how often.
        { name: `${CHOICES} x n=1`, send: spread, mustFill: false },
        { name: `${CHOICES} x n=1 again`, send: spread, mustFill: false },
        { name: `n=${CHOICES}`, send: () => send({ n: CHOICES }), mustFill: false },
      );
    }
  }

  const check = (c: Condition, reply: Reply) => {
    if (c.mustFill && reply.finishReasons.some((f) => f !== "length")) {
      throw new Error(`${c.name}: a choice ended before max_tokens (finish ${reply.finishReasons.join(",")}, ${reply.usageTokens} tokens): the model ended its turn`);
    }
    const counted = reply.run.reduce((s, x) => s + x.completionTokens, 0);
    if (counted !== reply.usageTokens) throw new Error(`${c.name}: choices add up to ${counted} tokens, usage says ${reply.usageTokens}`);
  };

  // Load, then warm every condition once (a schema no timed request uses: grammar machinery built, e.g. a vocabulary trie).
  const loadStarted = performance.now();
  await send({}).catch((err: unknown) => {
    throw new Error(`first request: ${(err as Error).message}`);
  });
  progress(`${engine}: first request (load) ${(performance.now() - loadStarted).toFixed(0)} ms`);
  // A 400 is the engine's answer, not a broken measurement: the comparisons that need that condition are reported refused.
  const refused = new Map<string, string>();
  for (const c of conditions) {
    try {
      const reply = c.name === "json_schema" ? await send(jsonSchemaFormat("warm", listSchema("warm", o.items))) : await c.send(0);
      check(c, reply);
    } catch (err) {
      if (!(err instanceof APIError && err.status === 400)) throw err;
      refused.set(c.name, err.message);
    }
  }
  if (refused.size > 0) {
    const needs = (spec: ComparisonSpec) => [spec.treatment, spec.baseline, spec.baselineAgain];
    for (const spec of specs.filter((sp) => needs(sp).some((n) => refused.has(n)))) {
      const name = needs(spec).find((n) => refused.has(n))!;
      skipped.push({ name: spec.name, reason: `refused by the engine (${name}): ${refused.get(name)}` });
    }
    specs = specs.filter((sp) => !needs(sp).some((n) => refused.has(n)));
    conditions = conditions.filter((c) => specs.some((sp) => needs(sp).includes(c.name)));
  }
  const constrained = conditions.some((c) => c.name === "json_schema");

  const runs = new Map<string, RunSample[]>(conditions.map((c) => [c.name, []]));
  const firstTtfts: number[] = [];
  let sampleText = "";
  for (let r = 0; r < o.rounds; r++) {
    if (constrained) {
      // The round's schema is new to the daemon: this request compiles it, the round's timed one finds it cached.
      // Its TTFT is all it is for: a few tokens do.
      const first = await request(client, modelId, prompt, 8, jsonSchemaFormat("list", listSchema(roundKey(r), o.items)));
      const t = first.run[0]!;
      firstTtfts.push((t.arrivalsMs[0] ?? Number.NaN) - t.startMs);
    }
    for (const c of roundOrder(conditions, r)) {
      const reply = await c.send(r);
      check(c, reply);
      runs.get(c.name)!.push(reply.run);
      if (c.name === "json_schema" && r === 0) sampleText = reply.run[0]!.text;
    }
  }

  const summaries = new Map(conditions.map((c) => [c.name, summarize(runs.get(c.name)!)]));
  const conditionResults: ConditionResult[] = conditions.map((c) => {
    const s = summaries.get(c.name)!;
    const rs = runs.get(c.name)!;
    return {
      name: c.name,
      decodeTokPerSec: s.decodeTokPerSec,
      decodeTokPerSecRuns: s.decodeTokPerSecRuns,
      wholeTokPerSec: median(rs.map(wholeRate)),
      wholeTokPerSecRuns: rs.map(wholeRate),
      ttftP50Ms: s.ttftMs.p50,
      itlP50Ms: s.itlMs.p50,
      tokensPerRun: median(rs.map((run) => run.reduce((n, x) => n + x.completionTokens, 0))),
      fullRuns: `${rs.filter((run) => run.every((x) => x.completionTokens === o.maxTokens)).length}/${rs.length}`,
    };
  });
  const byName = new Map(conditionResults.map((c) => [c.name, c]));
  const comparisons: Comparison[] = specs.map((spec) => {
    const of = (pick: (c: ConditionResult) => number[]) =>
      ratioWithNoise(pick(byName.get(spec.treatment)!), pick(byName.get(spec.baseline)!), pick(byName.get(spec.baselineAgain)!));
    const decode = of((c) => c.decodeTokPerSecRuns);
    const whole = of((c) => c.wholeTokPerSecRuns);
    const metric = byName.get(spec.baseline)!.itlP50Ms < BURSTY_ITL_MS ? "whole" : "decode";
    const chosen = metric === "decode" ? decode : whole;
    return {
      name: spec.name,
      target: spec.target,
      metric,
      decode,
      whole,
      addedUsPerToken: addedUsPerToken(chosen.treatment, chosen.baseline),
      verdict: verdict(chosen, spec.target),
    };
  });
  let compile = null;
  if (constrained) {
    const later = runs.get("json_schema")!.map((run) => (run[0]!.arrivalsMs[0] ?? Number.NaN) - run[0]!.startMs);
    compile = {
      firstTtftP50Ms: median(firstTtfts),
      laterTtftP50Ms: median(later),
      overheadMs: firstRequestOverheadMs(firstTtfts, later),
      unconstrainedTtftP50Ms: summaries.get("unconstrained")!.ttftMs.p50,
    };
  }
  return { engine, status: "measured", model: modelPath, conditions: conditionResults, comparisons, skipped, compile, sampleText };
}

interface FeaturesReport {
  suite: Suite;
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: { models: string[]; rounds: number; maxTokens: number; threads: number; prompt: string; schemaMinItems?: number };
  results: EngineResult[];
}

const x = (v: number) => (Number.isFinite(v) ? `x${v.toFixed(3)}` : "n/a");

function formatFeatures(report: FeaturesReport): string {
  const { suite, machine, setup } = report;
  const lines: string[] = [];
  lines.push(
    suite === "structured"
      ? `structured output: response_format json_schema (object with an array of >= ${setup.schemaMinItems} enum strings) vs unconstrained`
      : `sampling: logprobs + top_logprobs ${TOP_LOGPROBS} vs plain; n=${CHOICES} (one request) vs ${CHOICES} concurrent n=1 requests`,
  );
  lines.push(
    `max_tokens ${setup.maxTokens} per choice, temperature 0, threads ${setup.threads}, parallel ${CHOICES}, ${setup.rounds} rounds per engine, conditions rotating`,
  );
  lines.push(`models: ${setup.models.map((m) => m.replace(/^(.*?): .*\/([^/]+\/[^/]+)$/, "$1 $2")).join(", ")}`);
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load average ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  lines.push("");
  const rows: string[][] = [["engine", "condition", "decode tok/s", "(min..max)", "whole tok/s", "TTFT p50", "ITL p50", "tokens/run", "full runs"]];
  for (const r of report.results) {
    if (r.status !== "measured") {
      rows.push([r.engine, `${r.status}: ${r.reason}`, "", "", "", "", "", "", ""]);
      continue;
    }
    for (const c of r.conditions) {
      const finite = c.decodeTokPerSecRuns.filter((v) => Number.isFinite(v));
      rows.push([
        r.engine,
        c.name,
        c.decodeTokPerSec.toFixed(1),
        finite.length > 0 ? `${Math.min(...finite).toFixed(0)}..${Math.max(...finite).toFixed(0)}` : "",
        c.wholeTokPerSec.toFixed(1),
        `${c.ttftP50Ms.toFixed(1)} ms`,
        `${c.itlP50Ms.toFixed(2)} ms`,
        c.tokensPerRun.toFixed(0),
        c.fullRuns,
      ]);
    }
  }
  // Wide "not supported" reasons go last so the numbers stay aligned.
  lines.push(table(rows.filter((row) => row[2] !== "" || row === rows[0])));
  for (const row of rows.slice(1).filter((row) => row[2] === "")) lines.push(`${row[0]}: ${row[1]}`);
  lines.push("");
  const cmp: string[][] = [["engine", "comparison", "on", "ratio", "A/A", "A/A per round p25..p75", "µs/token added", "target", "verdict", "other rate's ratio (A/A)"]];
  const notCompared: string[] = [];
  for (const r of report.results) {
    if (r.status !== "measured") continue;
    for (const c of r.comparisons) {
      const [on, other] = c.metric === "decode" ? [c.decode, c.whole] : [c.whole, c.decode];
      cmp.push([
        r.engine,
        c.name,
        c.metric,
        x(on.ratio),
        x(on.aa),
        `${on.aaP25.toFixed(3)}..${on.aaP75.toFixed(3)}`,
        `${c.addedUsPerToken >= 0 ? "+" : ""}${c.addedUsPerToken.toFixed(0)}`,
        `>= ${c.target}`,
        c.verdict,
        `${c.metric === "decode" ? "whole" : "decode"} ${x(other.ratio)} (${x(other.aa)})`,
      ]);
    }
    for (const s of r.skipped) notCompared.push(`${r.engine}, ${s.name}: not supported (${s.reason})`);
  }
  lines.push(table(cmp));
  lines.push(...notCompared);
  if (suite === "structured") {
    lines.push("");
    const comp: string[][] = [["engine", "first request, new schema: TTFT p50", "later requests: TTFT p50", "compile overhead", "unconstrained TTFT p50"]];
    for (const r of report.results) {
      if (r.status !== "measured" || !r.compile) continue;
      comp.push([
        r.engine,
        `${r.compile.firstTtftP50Ms.toFixed(1)} ms`,
        `${r.compile.laterTtftP50Ms.toFixed(1)} ms`,
        `${r.compile.overheadMs.toFixed(1)} ms`,
        `${r.compile.unconstrainedTtftP50Ms.toFixed(1)} ms`,
      ]);
    }
    lines.push(table(comp));
    for (const r of report.results) {
      if (r.status === "measured" && r.sampleText)
        lines.push(`  ${r.engine} constrained text: ${JSON.stringify(r.sampleText.slice(0, 90))}${r.sampleText.length > 90 ? "…" : ""}`);
    }
  }
  lines.push("");
  lines.push("notes: decode tok/s = (tokens - 1) / (last content - first content) of a run, all choices / requests merged (aggregate");
  lines.push("       for n=4 and 4 x n=1); medians over rounds. ratio = treatment / baseline; A/A = the baseline's second copy over");
  lines.push("       its first; per round: the quartiles of A'/A. A miss by less than max(|1 - A/A|, per-round IQR / sqrt(rounds)) is");
  lines.push('       "within noise": this run cannot tell it from no difference.');
  lines.push("       whole tok/s = tokens / (last content - request start), TTFT included. The verdict is on decode tok/s unless the");
  lines.push(`       baseline's ITL p50 is under ${BURSTY_ITL_MS} ms (chunks arriving in bursts, e.g. llama-server relayed): then on whole tok/s.`);
  if (suite === "structured") {
    lines.push("       The constrained answer needs more items than max_tokens allows, so it runs to max_tokens like the unconstrained");
    lines.push("       one. Each round brings a new schema (the array's key differs): its first request compiles the grammar.");
  }
  return lines.join("\n");
}

export const runStructuredSuite = (argv: string[]) => runFeaturesSuite("structured", argv);
export const runSamplingSuite = (argv: string[]) => runFeaturesSuite("sampling", argv);
