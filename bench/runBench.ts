// `npm run bench [-- SUITE] [options]`. Suites:
//   (none)        the daemon's streaming overhead against node-llama-cpp used directly, on the same GGUF, threads,
//                 context size and prompt (this file);
//   detect        detection of a 200-entry models folder, cold and cached, and GET /v1/models (detectBench.ts);
//   llama-server  llama-server used directly against llama-server behind the daemon (llamaServerBench.ts);
//   vs-llama-server  the daemon's default GGUF path, its llama-server engine and in-process node-llama-cpp against
//                 llama-server directly, tiny and ~26 M-param models, concurrency 1/4/8 (vsLlamaServerBench.ts);
//   transformers  transformers' generate() called directly in Python against the daemon's transformers engine
//                 (transformersBench.ts);
//   onnx          onnxruntime-node with a minimal greedy loop against the daemon's ONNX engine (onnxBench.ts);
//   engines       one model as safetensors, GGUF and ONNX on the transformers, node-llama-cpp and ONNX engines,
//                 side by side in one daemon (enginesBench.ts);
//   load          requests/s and latency under load with API keys and metrics on vs off (loadBench.ts);
//   structured    decode tok/s with a response_format json_schema constraint vs without, and the first request's
//                 grammar compile, per engine (featuresBench.ts);
//   sampling      decode tok/s with logprobs + top_logprobs vs without, and n: 4 vs 4 concurrent n: 1 requests, per
//                 engine (featuresBench.ts);
//   web           the daemon's page at / in headless Chromium: time to interactive, bytes (webBench.ts; not part
//                 of all);
//   rerank        rerank documents/s through the daemon vs CrossEncoder.predict and llama-server's /v1/rerank
//                 (rerankBench.ts; not part of all);
//   native-host   TTFT and streamed tok/s through `tabagent native-host` vs the HTTP API (nativeHostBench.ts; not part of all);
//   all           the nine above, one after the other.
// A benchmark, not a test: targets print PASS/MISS and the exit code stays 0; only a broken measurement (a run short
// of max_tokens, a crash, a missing llama-server binary) exits 1.
import { existsSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { addCpu, readCpuTime, withCpuTime, ZERO_CPU, type CpuTime } from "./cpuTime.js";
import { readRssBytes, startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { openDirect, type DirectRunner } from "./measureDirect.js";
import { DETECT_HELP, runDetectSuite } from "./detectBench.js";
import { LLAMA_SERVER_HELP, runLlamaServerSuite } from "./llamaServerBench.js";
import { runBitnetSuite } from "./bitnetBench.js";
import { runVsLlamaServerSuite, VS_LLAMA_SERVER_HELP } from "./vsLlamaServerBench.js";
import { runTransformersSuite } from "./transformersBench.js";
import { runEnginesSuite } from "./enginesBench.js";
import { runLitertSuite } from "./litertBench.js";
import { runOnnxSuite } from "./onnxBench.js";
import { runLoadSuite } from "./loadBench.js";
import { runSamplingSuite, runStructuredSuite } from "./featuresBench.js";
import { runNativeHostSuite } from "./nativeHostBench.js";
import { runRerankSuite } from "./rerankBench.js";
import { runWebSuite } from "./webBench.js";
import { BENCH_HELP, parseBenchArgs, type BenchOptions } from "./options.js";
import { checkTargets, compare, formatReport, perToken, type BenchReport, type CpuBreakdown, type LateArrivalResult, type ModeResults } from "./report.js";
import { lateArrival, runConcurrent } from "./scenarios.js";
import { median, percentile, summarize } from "./stats.js";
import type { RunSample, StreamSample } from "./types.js";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const BUILT_CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));
const ROUND_TRIPS = 20;

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);

interface Collected {
  concurrency: number;
  direct: RunSample[];
  daemon: RunSample[];
  /** CPU of this process during direct runs; of the daemon, and of this process (the client), during daemon runs. */
  directCpu: CpuTime;
  daemonCpu: CpuTime;
  clientCpu: CpuTime;
}

const tokensOf = (runs: RunSample[]) => runs.flat().reduce((n, s) => n + s.completionTokens, 0);

/** Timed runs at one concurrency, alternating which mode goes first so drift in the (shared, noisy) machine's load hits both alike. */
async function collect(c: number, reps: number, options: BenchOptions, direct: DirectRunner, daemon: DaemonRunner): Promise<Collected> {
  const { prompt, maxTokens } = options;
  const entry: Collected = { concurrency: c, direct: [], daemon: [], directCpu: ZERO_CPU, daemonCpu: ZERO_CPU, clientCpu: ZERO_CPU };
  for (let i = 0; i < reps; i++) {
    for (const mode of i % 2 === 0 ? (["direct", "daemon"] as const) : (["daemon", "direct"] as const)) {
      if (mode === "direct") {
        const { result, cpu } = await withCpuTime([process.pid], () => runConcurrent(direct, c, prompt, maxTokens));
        entry.direct.push(result);
        entry.directCpu = addCpu(entry.directCpu, cpu[0]!);
      } else {
        const { result, cpu } = await withCpuTime([daemon.pid, process.pid], () => runConcurrent(daemon, c, prompt, maxTokens));
        entry.daemon.push(result);
        entry.daemonCpu = addCpu(entry.daemonCpu, cpu[0]!);
        entry.clientCpu = addCpu(entry.clientCpu, cpu[1]!);
      }
    }
  }
  return entry;
}

/** Streams that did not produce what they asked for: the model ended its turn, so the rates would mean nothing. */
function checkLengths(streams: { sample: StreamSample; expected: number }[]): void {
  const short = streams.filter((s) => s.sample.completionTokens !== s.expected);
  if (short.length === 0) return;
  const got = [...new Set(short.map((s) => `${s.sample.completionTokens}/${s.expected}`))].join(", ");
  throw new Error(
    `${short.length} of ${streams.length} streams ended early (tokens/asked: ${got}): the model ended its turn; try another --prompt or a lower --max-tokens`,
  );
}

/** One request arriving while concurrency-1 streams decode, in both modes; returns the finished (not aborted) streams too. */
async function measureLateArrival(options: BenchOptions, direct: DirectRunner, daemon: DaemonRunner): Promise<{ result: LateArrivalResult; streams: StreamSample[] }> {
  const { prompt, maxTokens } = options;
  const background = options.concurrency - 1;
  progress(`late arrival: 1 request while ${background} streams of ${maxTokens} tokens decode, ${options.lateTrials} trials per mode`);
  const ttfts = { direct: [] as number[], daemon: [] as number[] };
  const streams: StreamSample[] = [];
  for (let i = 0; i < options.lateTrials; i++) {
    for (const [mode, streamer] of [
      ["direct", direct],
      ["daemon", daemon],
    ] as const) {
      // The late request arrives ~10 ms into the others; max_tokens of them is plenty and bounds a trial's length.
      const r = await lateArrival(streamer, background, prompt, maxTokens, maxTokens);
      ttfts[mode].push(r.lateTtftMs);
      streams.push(...r.streams.filter((s) => !s.aborted));
    }
  }
  const summary = (v: number[]) => ({ p50: median(v), max: Math.max(...v) });
  return { result: { background, backgroundTokens: maxTokens, direct: summary(ttfts.direct), daemon: summary(ttfts.daemon) }, streams };
}

async function measure(options: BenchOptions, loadAvgAtStart: number, modelPath: string, direct: DirectRunner, daemon: DaemonRunner): Promise<BenchReport> {
  const { prompt, maxTokens, concurrency } = options;
  const levels = concurrency === 1 ? [1] : [1, concurrency];
  const promptTokens = direct.promptTokenCount(prompt);

  // Warm-up: the daemon loads the model on its first request; both sides fill their caches and JIT before timing.
  progress("warm-up (the daemon loads the model now)");
  const warm = await runConcurrent(daemon, 1, prompt, maxTokens);
  const loadedRssBytes = daemon.rssBytes();
  warm.push(...(await runConcurrent(direct, 1, prompt, maxTokens)));
  for (const c of levels) {
    warm.push(...(await runConcurrent(direct, c, prompt, maxTokens)));
    warm.push(...(await runConcurrent(daemon, c, prompt, maxTokens)));
  }
  // Fail fast: a model that ends its turn early makes every rate below meaningless.
  checkLengths(warm.map((sample) => ({ sample, expected: maxTokens })));
  const roundTrips: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) roundTrips.push(await daemon.roundTripMs());

  const collected: Collected[] = [];
  for (const c of levels) {
    const reps = c === 1 ? options.repsSingle : options.repsConcurrent;
    progress(`concurrency ${c}: ${reps} runs per mode, alternating`);
    collected.push(await collect(c, reps, options, direct, daemon));
  }

  const late = concurrency > 1 && options.lateTrials > 0 ? await measureLateArrival(options, direct, daemon) : null;
  const endRssBytes = daemon.rssBytes();

  const timed = collected.flatMap((e) => [...e.direct, ...e.daemon].flat());
  checkLengths([...warm, ...timed, ...(late?.streams ?? [])].map((sample) => ({ sample, expected: maxTokens })));

  // The warm-up evaluated the whole prompt; timed runs reuse its KV cache and evaluate one token. On a tiny random
  // model that numeric difference can flip a near-tie at temperature 0, so texts are compared among timed runs only.
  const single = collected[0]!;
  const referenceText = single.direct[0]![0]!.text;
  const matching = (runs: RunSample[]) => `${runs.flat().filter((s) => s.text === referenceText).length}/${runs.flat().length}`;
  const results: ModeResults[] = collected.map((e) => ({ concurrency: e.concurrency, direct: summarize(e.direct), daemon: summarize(e.daemon) }));
  const comparisons = results.map(compare);
  const cpu: CpuBreakdown[] | null =
    readCpuTime(process.pid) === null
      ? null
      : collected.map((e) => ({
          concurrency: e.concurrency,
          direct: perToken(e.directCpu, tokensOf(e.direct)),
          daemon: perToken(e.daemonCpu, tokensOf(e.daemon)),
          client: perToken(e.clientCpu, tokensOf(e.daemon)),
        }));
  const cpuList = cpus();
  return {
    machine: {
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model.trim() ?? "unknown",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      loadAvg1mStart: loadAvgAtStart,
      loadAvg1mEnd: loadavg()[0] ?? 0,
    },
    setup: {
      model: basename(modelPath),
      modelBytes: statSync(modelPath).size,
      threads: options.threads,
      contextSize: options.contextSize,
      maxTokens,
      promptTokens,
      prompt,
    },
    results,
    comparisons,
    roundTripMs: { p50: median(roundTrips), p99: percentile(roundTrips, 99) },
    lateArrival: late?.result ?? null,
    memory: { idleRssBytes: daemon.idleRssBytes, loadedRssBytes, endRssBytes },
    cpu,
    checks: {
      allRunsProducedMaxTokens: true,
      promptTokensMatch: [...warm, ...timed].every((s) => s.promptTokens === promptTokens),
      // Temperature 0, same tokens, same cache state, one sequence: the daemon must stream exactly what the engine makes.
      sameTextAtC1: [...single.direct, ...single.daemon].flat().every((s) => s.text === referenceText),
      // With several sequences the batch a token is decoded in depends on timing, and llama.cpp's numerics depend on
      // the batch: near-ties of a tiny random model can then flip in either mode. Reported, not required.
      sameTextConcurrent: collected.slice(1).map((e) => ({ concurrency: e.concurrency, direct: matching(e.direct), daemon: matching(e.daemon) })),
    },
    targets: checkTargets(comparisons, daemon.idleRssBytes),
  };
}

const SUITES = ["detect", "llama-server", "vs-llama-server", "transformers", "onnx", "engines", "load", "structured", "sampling", "all"] as const;

async function main(): Promise<number> {
  const [first, ...rest] = process.argv.slice(2);
  if (first === "detect") return runDetectSuite(rest);
  if (first === "llama-server") return runLlamaServerSuite(rest);
  if (first === "bitnet") return runBitnetSuite(rest);
  if (first === "vs-llama-server") return runVsLlamaServerSuite(rest);
  if (first === "transformers") return runTransformersSuite(rest);
  if (first === "engines") return runEnginesSuite(rest);
  if (first === "onnx") return runOnnxSuite(rest);
  if (first === "litert") return runLitertSuite(rest);
  if (first === "load") return runLoadSuite(rest);
  if (first === "structured") return runStructuredSuite(rest);
  if (first === "sampling") return runSamplingSuite(rest);
  if (first === "native-host") return runNativeHostSuite(rest);
  if (first === "rerank") return runRerankSuite(rest);
  if (first === "web") return runWebSuite(rest);
  if (first === "all") {
    if (rest.some((a) => a !== "--json")) {
      process.stderr.write("bench: `all` takes no options but --json; run the suites one by one to tune them\n");
      return 2;
    }
    // Each suite runs once; a suite that could not measure makes the whole run exit non-zero, the others still run.
    let code = 0;
    for (const [name, run] of [
      ["default", runDaemonSuite],
      ["detect", runDetectSuite],
      ["llama-server", runLlamaServerSuite],
      ["vs-llama-server", runVsLlamaServerSuite],
      ["transformers", runTransformersSuite],
      ["onnx", runOnnxSuite],
      ["engines", runEnginesSuite],
      ["load", runLoadSuite],
      ["structured", runStructuredSuite],
      ["sampling", runSamplingSuite],
    ] as const) {
      process.stderr.write(`[bench] ===== suite: ${name} =====\n`);
      if (!rest.includes("--json")) process.stdout.write(`\n===== ${name} =====\n`);
      try {
        code = Math.max(code, await run(rest));
      } catch (err) {
        process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        code = 1;
      }
    }
    return code;
  }
  if (first !== undefined && !first.startsWith("-")) {
    process.stderr.write(`bench: unknown suite '${first}' (suites: ${SUITES.join(", ")}; none = the default suite)\n`);
    return 2;
  }
  return runDaemonSuite(process.argv.slice(2));
}

/** The default suite: node-llama-cpp directly vs through the daemon. */
async function runDaemonSuite(argv: string[]): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseBenchArgs(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${BENCH_HELP}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(`${BENCH_HELP}\n${DETECT_HELP}\n${LLAMA_SERVER_HELP}\n${VS_LLAMA_SERVER_HELP}`);
    return 0;
  }
  if (!existsSync(BUILT_CLI)) {
    process.stderr.write("bench: dist/ is missing; run `npm run build` (npm run bench does it first)\n");
    return 1;
  }
  if (options.modelPath !== null && !existsSync(options.modelPath)) {
    process.stderr.write(`bench: no such model file: ${options.modelPath}\n`);
    return 2;
  }
  const loadAvgAtStart = loadavg()[0] ?? 0;
  const modelPath = options.modelPath ?? (await ensureFixtures(FIXTURES_DIR)).chatModelPath;
  const sequences = options.concurrency;

  let daemon: DaemonRunner | null = null;
  let direct: DirectRunner | null = null;
  // Last resort if something exits past the finally below: never leave a daemon running.
  const killDaemon = () => {
    if (daemon && readRssBytes(daemon.pid) !== null) process.kill(daemon.pid, "SIGKILL");
  };
  process.once("exit", killDaemon);
  try {
    // The daemon starts first, so its idle RSS is read while this process is not busy loading the direct model.
    progress(`starting bin/tabagent serve (threads ${options.threads}, parallel ${sequences})`);
    const nodeArgs = options.profileDaemonDir === null ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(options.profileDaemonDir)}`];
    daemon = await startDaemon({ modelPath, threads: options.threads, contextSize: options.contextSize, parallel: sequences, nodeArgs });
    progress(`loading the model directly with node-llama-cpp (threads ${options.threads}, sequences ${sequences})`);
    direct = await openDirect({ modelPath, threads: options.threads, contextSize: options.contextSize, sequences });
    const report = await measure(options, loadAvgAtStart, modelPath, direct, daemon);
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return 0;
  } finally {
    const code = await daemon?.stop();
    if (code !== undefined && code !== 0) progress(`warning: the daemon exited with code ${code}`);
    if (options.profileDaemonDir !== null) progress(`daemon CPU profile written to ${resolve(options.profileDaemonDir)} (open it in Chrome DevTools)`);
    await direct?.dispose();
    process.off("exit", killDaemon);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
