// `npm run bench`: the daemon's streaming overhead against node-llama-cpp used directly, on the same GGUF, threads,
// context size and prompt. A benchmark, not a test: targets print PASS/MISS and the exit code stays 0; only a
// broken measurement (a run short of max_tokens, a crash) exits 1.
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { openDirect, type DirectRunner } from "./measureDirect.js";
import { readRssBytes, startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { BENCH_HELP, parseBenchArgs, type BenchOptions } from "./options.js";
import { checkTargets, compare, formatReport, type BenchReport, type ModeResults } from "./report.js";
import { summarize, type RunSample } from "./stats.js";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const BUILT_CLI = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));

const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);

interface Collected {
  concurrency: number;
  direct: RunSample[];
  daemon: RunSample[];
}

async function measure(options: BenchOptions, modelPath: string, direct: DirectRunner, daemon: DaemonRunner): Promise<BenchReport> {
  const { prompt, maxTokens, concurrency } = options;
  const levels = concurrency === 1 ? [1] : [1, concurrency];

  // Warm-up: the daemon loads the model on its first request; both sides fill their caches and JIT before timing.
  progress("warm-up (the daemon loads the model now)");
  const warm = await daemon.run(1, prompt, maxTokens);
  const loadedRssBytes = daemon.rssBytes();
  const directWarm = await direct.run(1, prompt, maxTokens);
  for (const c of levels) {
    await direct.run(c, prompt, maxTokens);
    await daemon.run(c, prompt, maxTokens);
  }

  const collected: Collected[] = [];
  for (const c of levels) {
    const reps = c === 1 ? options.repsSingle : options.repsConcurrent;
    const entry: Collected = { concurrency: c, direct: [], daemon: [] };
    progress(`concurrency ${c}: ${reps} runs per mode, alternating`);
    for (let i = 0; i < reps; i++) {
      // Alternate which mode goes first so drift in the machine's load (it is shared and noisy) hits both alike.
      const order = i % 2 === 0 ? (["direct", "daemon"] as const) : (["daemon", "direct"] as const);
      for (const mode of order) {
        if (mode === "direct") entry.direct.push(await direct.run(c, prompt, maxTokens));
        else entry.daemon.push(await daemon.run(c, prompt, maxTokens));
      }
    }
    collected.push(entry);
  }
  const endRssBytes = daemon.rssBytes();

  const allStreams = collected.flatMap((e) => [...e.direct, ...e.daemon].flat());
  const short = allStreams.filter((s) => s.completionTokens !== maxTokens);
  if (short.length > 0) {
    throw new Error(
      `${short.length} of ${allStreams.length} streams produced ${[...new Set(short.map((s) => s.completionTokens))].join("/")} tokens ` +
        `instead of ${maxTokens}: the model ended its turn early; try another --prompt or a lower --max-tokens`,
    );
  }
  // The warm-up evaluated the whole prompt; timed runs reuse its KV cache and evaluate one token. On a tiny random
  // model that numeric difference can flip a near-tie at temperature 0, so texts are compared among timed runs only.
  const referenceText = collected[0]!.direct[0]![0]!.text;
  const results: ModeResults[] = collected.map((e) => ({ concurrency: e.concurrency, direct: summarize(e.direct), daemon: summarize(e.daemon) }));
  const comparisons = results.map(compare);
  const idleRssBytes = daemon.idleRssBytes;
  const promptTokens = direct.promptTokenCount(prompt);
  const cpuList = cpus();
  return {
    machine: {
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model.trim() ?? "unknown",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      loadAvg1m: loadavg()[0] ?? 0,
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
    memory: { idleRssBytes, loadedRssBytes, endRssBytes },
    checks: {
      allRunsProducedMaxTokens: true,
      promptTokensMatch: [...warm, ...directWarm, ...allStreams].every((s) => s.promptTokens === promptTokens),
      // Temperature 0 on the same tokens and cache state: the daemon must stream exactly what the engine generates.
      sameTextAsDirect: allStreams.every((s) => s.text === referenceText),
    },
    targets: checkTargets(comparisons, idleRssBytes),
  };
}

async function main(): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${BENCH_HELP}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  if (!existsSync(BUILT_CLI)) {
    process.stderr.write("bench: dist/ is missing; run `npm run build` (npm run bench does it first)\n");
    return 1;
  }
  const modelPath = options.modelPath ?? (await ensureFixtures(FIXTURES_DIR)).chatModelPath;
  const sequences = options.concurrency;

  let daemon: DaemonRunner | null = null;
  let direct: DirectRunner | null = null;
  // Last resort if something throws past the finally below: never leave a daemon running.
  const killDaemon = () => {
    if (daemon && readRssBytes(daemon.pid) !== null) process.kill(daemon.pid, "SIGKILL");
  };
  process.once("exit", killDaemon);
  try {
    // The daemon starts first, so its idle RSS is read on a machine where the direct model is not loading yet.
    progress(`starting bin/tabagent serve (threads ${options.threads}, parallel ${sequences})`);
    daemon = await startDaemon({ modelPath, threads: options.threads, contextSize: options.contextSize, parallel: sequences });
    progress(`loading the model directly with node-llama-cpp (threads ${options.threads}, sequences ${sequences})`);
    direct = await openDirect({ modelPath, threads: options.threads, contextSize: options.contextSize, sequences });
    const report = await measure(options, modelPath, direct, daemon);
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return 0;
  } finally {
    const code = await daemon?.stop();
    if (code !== undefined && code !== 0) progress(`warning: the daemon exited with code ${code}`);
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
