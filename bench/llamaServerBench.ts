// `npm run bench -- llama-server`: llama-server used directly against llama-server behind the daemon (engine
// "llama-server": the daemon supervises its own llama-server child and relays its SSE stream), same binary, model,
// threads, slots, prompt and max_tokens, both driven by the `openai` client. Also, for reference, node-llama-cpp in
// this process and node-llama-cpp inside the daemon, on the same model. Targets print PASS/MISS; exit code 0 unless
// the measurement itself broke (a short stream, a crash, no llama-server binary).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { APIConnectionError } from "openai";
import { detectSource } from "../src/detection/detectSource.js";
import { findLlamaServer } from "../src/native/findLlamaServer.js";
import { findFreePort } from "../src/supervisor/findFreePort.js";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { childPids, commandLine, killIfAlive, spawnTracked, waitHealthy, type TrackedChild } from "./childProcess.js";
import { addCpu, readCpuTime, withCpuTime, ZERO_CPU, type CpuTime } from "./cpuTime.js";
import { openaiClient, startDaemon, streamChat, type DaemonRunner } from "./measureDaemon.js";
import { openDirect, type DirectRunner } from "./measureDirect.js";
import { ms, perToken, signedMs, table, type CpuPerToken } from "./report.js";
import { runConcurrent } from "./scenarios.js";
import { median, percentile, summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, Streamer } from "./types.js";
import { DEFAULT_PROMPT, integer } from "./options.js";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const progress = (message: string) => process.stderr.write(`[bench llama-server] ${message}\n`);

export const LLAMA_SERVER_HELP = `npm run bench -- llama-server [options]

  --model PATH          GGUF chat model (default: the generated tiny test model)
  --llama-server PATH   llama-server binary (default: findLlamaServer("standard"), as the daemon looks it up)
  --threads N           llama.cpp threads, every mode (default 1)
  --context-size N      context tokens per slot (default 2048); llama-server gets -c N*slots
  --concurrency N       slots (-np) and simultaneous streams for the concurrent case (default 4)
  --max-tokens N        tokens per request (default 256)
  --prompt TEXT         the user message
  --reps N              timed runs per mode at concurrency 1 (default 20)
  --reps-concurrent N   timed runs per mode at the concurrent case (default 10)
  --no-node-llama-cpp   skip the node-llama-cpp reference modes
  --profile-daemon DIR  run the daemon under node --cpu-prof and write its profile into DIR (on exit)
  --json                print the results as JSON
`;

interface Options {
  modelPath: string | null;
  binary: string | null;
  threads: number;
  contextSize: number;
  concurrency: number;
  maxTokens: number;
  prompt: string;
  reps: number;
  repsConcurrent: number;
  nodeLlamaCpp: boolean;
  profileDaemonDir: string | null;
  json: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      "llama-server": { type: "string" },
      threads: { type: "string" },
      "context-size": { type: "string" },
      concurrency: { type: "string" },
      "max-tokens": { type: "string" },
      prompt: { type: "string" },
      reps: { type: "string" },
      "reps-concurrent": { type: "string" },
      "no-node-llama-cpp": { type: "boolean" },
      "profile-daemon": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    modelPath: values.model ?? null,
    binary: values["llama-server"] ?? null,
    threads: integer("threads", values.threads, 1),
    contextSize: integer("context-size", values["context-size"], 2048),
    concurrency: integer("concurrency", values.concurrency, 4),
    maxTokens: integer("max-tokens", values["max-tokens"], 256),
    prompt: values.prompt ?? DEFAULT_PROMPT,
    reps: integer("reps", values.reps, 20),
    repsConcurrent: integer("reps-concurrent", values["reps-concurrent"], 10),
    nodeLlamaCpp: values["no-node-llama-cpp"] !== true,
    profileDaemonDir: values["profile-daemon"] ?? null,
    json: values.json === true,
  };
}

type ModeName = "llama-server direct" | "llama-server via daemon" | "node-llama-cpp in-process" | "node-llama-cpp via daemon";

interface Mode {
  name: ModeName;
  streamer: Streamer;
  /** Processes whose CPU counts for this mode (the bench process is always counted, as the client or engine). */
  pids: () => { label: string; pid: number }[];
}

interface ModeRuns {
  runs: RunSample[];
  cpu: Map<string, CpuTime>;
}

interface LlamaServerReport {
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: {
    model: string;
    binary: string;
    threads: number;
    contextPerSlot: number;
    slots: number;
    maxTokens: number;
    promptTokens: number | null;
    llamaServerArgs: string[];
  };
  results: { concurrency: number; mode: ModeName; summary: ConfigSummary; engineTokPerSec: number | null; cpu: { label: string; perToken: CpuPerToken }[] }[];
  comparisons: {
    concurrency: number;
    of: ModeName;
    against: ModeName;
    decodeRatio: number;
    ttftAddedP50Ms: number;
    ttftAddedP99Ms: number;
    itlAddedP50Ms: number;
    itlAddedP99Ms: number;
    /** Whole-answer time (request start -> last token), p50, added. */
    totalAddedP50Ms: number;
  }[];
  floors: { label: string; p50: number; p99: number }[];
  firstRequestMs: { daemonLlamaServer: number };
  /** textsMatchAcrossEngines: null when the node-llama-cpp modes were skipped. */
  checks: {
    allStreamsComplete: boolean;
    concurrentStreamsEndedEarly: number;
    sameTextC1: string;
    textsMatchAcrossEngines: boolean | null;
    connectionRetries: Partial<Record<ModeName, number>>;
  };
  targets: { name: string; value: number; target: string; pass: boolean }[];
}

const LLAMA_SERVER_TARGETS = { decodeRatio: 0.98, ttftAddedP50Ms: 2, itlAddedP99Ms: 1 } as const;

/** llama-server's flags, as LlamaServerBackend builds them for this config (src/backends/llamaServer/LlamaServerBackend.ts). */
function llamaServerArgs(modelPath: string, port: number, o: Options, ctxPerSlot: number): string[] {
  return [
    "--model",
    modelPath,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--ctx-size",
    String(ctxPerSlot * o.concurrency),
    "--parallel",
    String(o.concurrency),
    "--threads",
    String(o.threads),
    "--jinja",
  ];
}

export async function runLlamaServerSuite(argv: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${LLAMA_SERVER_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(LLAMA_SERVER_HELP);
    return 0;
  }
  const options = o;
  const loadAvgStart = loadavg()[0] ?? 0;
  const found = options.binary ? { path: options.binary, source: "flag", tried: [] } : await findLlamaServer("standard", { env: process.env });
  if (found.path === null) {
    process.stderr.write(
      `bench llama-server: no llama-server binary found; build one with native/build-llama-server.sh or pass --llama-server PATH. Tried:\n` +
        found.tried.map((t) => `  ${t.source}: ${t.path}: ${t.problem}\n`).join(""),
    );
    return 1;
  }
  const binary = found.path;
  // Absolute: the daemon's config file resolves relative paths against its own (temporary) folder.
  const modelPath = options.modelPath !== null ? resolve(options.modelPath) : (await ensureFixtures(FIXTURES_DIR)).chatModelPath;
  progress(`binary ${binary} (${found.source}), model ${modelPath}`);

  const tmp = await mkdtemp(join(tmpdir(), "tabagent-bench-ls-"));
  let direct: TrackedChild | null = null;
  let daemon: DaemonRunner | null = null;
  let inProcess: DirectRunner | null = null;
  let daemonChildren: number[] = [];
  try {
    // The daemon caps the per-slot context at the model's trained context (from detection); so does this.
    const trained = (await detectSource(modelPath))[0]?.contextLength ?? null;
    const ctxPerSlot = trained === null ? options.contextSize : Math.min(options.contextSize, trained);
    const port = await findFreePort();
    const args = llamaServerArgs(modelPath, port, options, ctxPerSlot);
    progress(`starting llama-server directly: ${args.join(" ")}`);
    direct = spawnTracked(binary, args);
    await waitHealthy(direct, `http://127.0.0.1:${port}/health`, 60_000);

    const configPath = join(tmp, "bench-config.json");
    await writeFile(
      configPath,
      JSON.stringify(
        {
          host: "127.0.0.1",
          port: 0,
          gpu: "off",
          threads: options.threads,
          contextSize: options.contextSize,
          parallel: options.concurrency,
          idleTtlSeconds: 0,
          logLevel: "info",
          models: [
            { id: "bench-ls", path: modelPath, engine: "llama-server", llamaServerPath: binary },
            ...(options.nodeLlamaCpp ? [{ id: "bench-nlc", path: modelPath, engine: "node-llama-cpp" }] : []),
          ],
        },
        null,
        2,
      ),
    );
    progress(`starting bin/tabagent serve --config ${configPath}`);
    const nodeArgs = options.profileDaemonDir === null ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(options.profileDaemonDir)}`];
    daemon = await startDaemon({ serveArgs: ["--config", configPath], modelId: "bench-ls", nodeArgs });
    const d = daemon;
    if (options.nodeLlamaCpp) {
      progress("loading the model in-process with node-llama-cpp");
      inProcess = await openDirect({ modelPath, threads: options.threads, contextSize: options.contextSize, sequences: options.concurrency });
    }

    const directClient = openaiClient(`http://127.0.0.1:${port}/v1`);
    const directPid = direct.pid;
    const daemonLlamaPid = () => daemonChildren.find((p) => commandLine(p)?.includes("llama-server")) ?? -1;
    const modes: Mode[] = [
      {
        name: "llama-server direct",
        streamer: { stream: (p, n, s) => streamChat(directClient, "bench", p, n, s) },
        pids: () => [
          { label: "llama-server", pid: directPid },
          { label: "bench (openai client)", pid: process.pid },
        ],
      },
      {
        name: "llama-server via daemon",
        streamer: d,
        pids: () => [
          { label: "llama-server (daemon's child)", pid: daemonLlamaPid() },
          { label: "tabagent daemon", pid: d.pid },
          { label: "bench (openai client)", pid: process.pid },
        ],
      },
    ];
    if (inProcess) {
      modes.push(
        { name: "node-llama-cpp in-process", streamer: inProcess, pids: () => [{ label: "bench (engine)", pid: process.pid }] },
        {
          name: "node-llama-cpp via daemon",
          streamer: d.streamerFor("bench-nlc"),
          pids: () => [
            { label: "tabagent daemon", pid: d.pid },
            { label: "bench (openai client)", pid: process.pid },
          ],
        },
      );
    }

    // Warm-up: the daemon starts its llama-server child (and loads node-llama-cpp) on the first request.
    progress("warm-up (the daemon starts its llama-server child now)");
    const firstStart = performance.now();
    const warm: RunSample[] = [await runConcurrent(d, 1, options.prompt, options.maxTokens)];
    const firstRequestMs = performance.now() - firstStart;
    daemonChildren = childPids(d.pid);
    if (daemonLlamaPid() < 0) throw new Error(`the daemon has no llama-server child after its first request (children: ${daemonChildren.join(", ") || "none"})`);
    for (const c of [1, options.concurrency]) for (const m of modes) warm.push(await runConcurrent(m.streamer, c, options.prompt, options.maxTokens));
    checkComplete(warm, options.maxTokens);

    const floors = [
      { label: "GET /v1/models, llama-server direct (openai client)", p50: 0, p99: 0, run: () => directClient.models.list() },
      { label: "GET /v1/models, daemon (openai client)", p50: 0, p99: 0, run: () => d.roundTripMs() },
    ];
    for (const f of floors) {
      const t: number[] = [];
      for (let i = 0; i < 30; i++) {
        const s = performance.now();
        await f.run();
        t.push(performance.now() - s);
      }
      f.p50 = median(t);
      f.p99 = percentile(t, 99);
    }

    const levels = options.concurrency === 1 ? [1] : [1, options.concurrency];
    const collected = new Map<string, ModeRuns>();
    const retried = new Map<ModeName, number>();
    for (const c of levels) {
      const reps = c === 1 ? options.reps : options.repsConcurrent;
      progress(`concurrency ${c}: ${reps} runs per mode, order rotating`);
      for (const m of modes) collected.set(`${c}|${m.name}`, { runs: [], cpu: new Map() });
      for (let i = 0; i < reps; i++) {
        // Rotate the order so drift in the shared machine's load reaches every mode alike.
        const order = modes.map((_, k) => modes[(k + i) % modes.length]!);
        for (const m of order) {
          const pids = m.pids();
          let timed: { result: RunSample; cpu: CpuTime[] } | null = null;
          for (let attempt = 0; timed === null; attempt++) {
            try {
              timed = await withCpuTime(
                pids.map((p) => p.pid),
                () => runSettled(m.streamer, c, options.prompt, options.maxTokens),
              );
            } catch (err) {
              // llama-server (cpp-httplib) sometimes closes a kept-alive connection just as the client reuses it: the
              // request never reached it. Such a run is run again (at most twice) and counted; anything else fails.
              if (err instanceof APIConnectionError && attempt < 2) {
                retried.set(m.name, (retried.get(m.name) ?? 0) + 1);
                continue;
              }
              throw new Error(`${m.name}, concurrency ${c}, run ${i + 1}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
            }
          }
          const { result, cpu } = timed;
          const entry = collected.get(`${c}|${m.name}`)!;
          entry.runs.push(result);
          pids.forEach((p, k) => entry.cpu.set(p.label, addCpu(entry.cpu.get(p.label) ?? ZERO_CPU, cpu[k]!)));
        }
      }
    }
    const allRuns = [...collected.values()].flatMap((e) => e.runs);
    const endedEarly = checkComplete(allRuns, options.maxTokens);

    const results: LlamaServerReport["results"] = [];
    for (const c of levels) {
      for (const m of modes) {
        const e = collected.get(`${c}|${m.name}`)!;
        const tokens = e.runs.flat().reduce((n, s) => n + s.completionTokens, 0);
        const engine = e.runs.flat().flatMap((s) => (s.engineTokPerSec === undefined ? [] : [s.engineTokPerSec]));
        results.push({
          concurrency: c,
          mode: m.name,
          summary: summarize(e.runs),
          engineTokPerSec: engine.length > 0 ? median(engine) : null,
          cpu: readCpuTime(process.pid) === null ? [] : [...e.cpu].map(([label, t]) => ({ label, perToken: perToken(t, tokens) })),
        });
      }
    }
    const find = (c: number, mode: ModeName) => results.find((r) => r.concurrency === c && r.mode === mode)?.summary;
    const comparisons: LlamaServerReport["comparisons"] = [];
    const pairs: [ModeName, ModeName][] = [["llama-server via daemon", "llama-server direct"]];
    if (inProcess)
      pairs.push(
        ["llama-server via daemon", "node-llama-cpp in-process"],
        ["node-llama-cpp via daemon", "node-llama-cpp in-process"],
        ["llama-server direct", "node-llama-cpp in-process"],
      );
    for (const c of levels) {
      for (const [of, against] of pairs) {
        const a = find(c, of)!;
        const b = find(c, against)!;
        comparisons.push({
          concurrency: c,
          of,
          against,
          decodeRatio: a.decodeTokPerSec / b.decodeTokPerSec,
          ttftAddedP50Ms: a.ttftMs.p50 - b.ttftMs.p50,
          ttftAddedP99Ms: a.ttftMs.p99 - b.ttftMs.p99,
          itlAddedP50Ms: a.itlMs.p50 - b.itlMs.p50,
          itlAddedP99Ms: a.itlMs.p99 - b.itlMs.p99,
          totalAddedP50Ms: a.totalMs.p50 - b.totalMs.p50,
        });
      }
    }
    const targets: LlamaServerReport["targets"] = [];
    const T = LLAMA_SERVER_TARGETS;
    for (const k of comparisons.filter((x) => x.of === "llama-server via daemon" && x.against === "llama-server direct")) {
      targets.push({ name: `decode tok/s daemon/direct, c=${k.concurrency}`, value: k.decodeRatio, target: `>= ${T.decodeRatio}`, pass: k.decodeRatio >= T.decodeRatio });
      targets.push({
        name: `TTFT added p50 (ms), c=${k.concurrency}`,
        value: k.ttftAddedP50Ms,
        target: `<= ${T.ttftAddedP50Ms}`,
        pass: k.ttftAddedP50Ms <= T.ttftAddedP50Ms,
      });
      targets.push({
        name: `inter-token latency added p99 (ms), c=${k.concurrency}`,
        value: k.itlAddedP99Ms,
        target: `<= ${T.itlAddedP99Ms}`,
        pass: k.itlAddedP99Ms <= T.itlAddedP99Ms,
      });
    }

    const c1 = (mode: ModeName) => collected.get(`1|${mode}`)?.runs.flat() ?? [];
    const reference = c1("llama-server direct")[0]?.text ?? "";
    const lsStreams = [...c1("llama-server direct"), ...c1("llama-server via daemon")];
    const nlcStreams = [...c1("node-llama-cpp in-process"), ...c1("node-llama-cpp via daemon")];
    const cpuList = cpus();
    const report: LlamaServerReport = {
      machine: {
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model.trim() ?? "unknown",
        node: process.version,
        loadAvg1mStart: loadAvgStart,
        loadAvg1mEnd: loadavg()[0] ?? 0,
      },
      setup: {
        model: basename(modelPath),
        binary,
        threads: options.threads,
        contextPerSlot: ctxPerSlot,
        slots: options.concurrency,
        maxTokens: options.maxTokens,
        promptTokens: allRuns[0]?.[0]?.promptTokens ?? null,
        llamaServerArgs: args.map((a) => (a === String(port) ? "PORT" : a)),
      },
      results,
      comparisons,
      floors: floors.map(({ label, p50, p99 }) => ({ label, p50, p99 })),
      firstRequestMs: { daemonLlamaServer: firstRequestMs },
      checks: {
        allStreamsComplete: endedEarly === 0,
        concurrentStreamsEndedEarly: endedEarly,
        sameTextC1: `${lsStreams.filter((s) => s.text === reference).length}/${lsStreams.length}`,
        connectionRetries: Object.fromEntries(retried),
        textsMatchAcrossEngines: nlcStreams.length === 0 ? null : nlcStreams.every((s) => s.text === reference),
      },
      targets,
    };
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatLlamaServerReport(report)}\n`);
    return 0;
  } finally {
    // The daemon stops its llama-server child on SIGTERM; anything left behind after that is killed here.
    const code = await daemon?.stop();
    if (code !== undefined && code !== 0) progress(`warning: the daemon exited with code ${code}`);
    for (const pid of daemonChildren) if (killIfAlive(pid, "llama-server")) progress(`warning: the daemon left llama-server ${pid} running; killed it`);
    const directCode = await direct?.stop();
    if (directCode !== undefined && directCode !== 0 && directCode !== null) progress(`warning: llama-server exited with code ${directCode}`);
    await inProcess?.dispose();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Like runConcurrent, but waits for every stream before it rethrows the first failure (a retry must not overlap). */
export async function runSettled(streamer: Streamer, concurrency: number, prompt: string, maxTokens: number): Promise<RunSample> {
  const startMs = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: concurrency }, () => streamer.stream(prompt, maxTokens, { startMs })));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<RunSample[number]>).value);
}

/**
 * Streams must produce max_tokens. Concurrent runs may end a little early: the batch a token is decoded in changes
 * llama.cpp's numerics, and a near-tie can flip to end-of-turn late in a stream. Those (>= 90 % of max_tokens) are
 * counted and reported; anything shorter makes the rates meaningless and fails the run.
 */
export function checkComplete(runs: RunSample[], maxTokens: number): number {
  const short = runs.flat().filter((s) => s.completionTokens !== maxTokens);
  const tolerated = runs
    .filter((r) => r.length > 1)
    .flat()
    .filter((s) => s.completionTokens !== maxTokens && s.completionTokens >= 0.9 * maxTokens);
  if (short.length > tolerated.length) {
    const got = [...new Set(short.map((s) => s.completionTokens))].join(", ");
    throw new Error(`${short.length} streams ended early (got ${got} of ${maxTokens} tokens): the model ended its turn; try another --prompt or a lower --max-tokens`);
  }
  return tolerated.length;
}

function formatLlamaServerReport(r: LlamaServerReport): string {
  const { machine, setup } = r;
  const lines: string[] = [];
  lines.push(
    `tabagent bench llama-server: ${setup.model}, threads ${setup.threads}, ${setup.slots} slots x ${setup.contextPerSlot} context, max_tokens ${setup.maxTokens}, ` +
      `prompt ${setup.promptTokens ?? "?"} tokens, temperature 0`,
  );
  lines.push(`llama-server ${setup.binary}`);
  lines.push(`  args (direct, and what the daemon passes its child): ${setup.llamaServerArgs.join(" ")}`);
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load average ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  lines.push("");
  const rows: string[][] = [["mode", "conc", "runs", "decode tok/s", "(min..max)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "whole p50", "engine tok/s"]];
  for (const x of r.results) {
    const s = x.summary;
    rows.push([
      x.mode,
      String(x.concurrency),
      String(s.runs),
      s.decodeTokPerSec.toFixed(0),
      `${Math.min(...s.decodeTokPerSecRuns).toFixed(0)}..${Math.max(...s.decodeTokPerSecRuns).toFixed(0)}`,
      ms(s.ttftMs.p50),
      ms(s.ttftMs.p99),
      ms(s.itlMs.p50),
      ms(s.itlMs.p99),
      ms(s.totalMs.p50),
      x.engineTokPerSec === null ? "" : x.engineTokPerSec.toFixed(0),
    ]);
  }
  lines.push(table(rows));
  lines.push("");
  const cmp: string[][] = [["comparison", "conc", "decode ratio", "TTFT +p50", "TTFT +p99", "ITL +p50", "ITL +p99", "whole +p50"]];
  for (const c of r.comparisons) {
    cmp.push([
      `${c.of} vs ${c.against}`,
      String(c.concurrency),
      `x${c.decodeRatio.toFixed(3)}`,
      signedMs(c.ttftAddedP50Ms),
      signedMs(c.ttftAddedP99Ms),
      signedMs(c.itlAddedP50Ms),
      signedMs(c.itlAddedP99Ms),
      signedMs(c.totalAddedP50Ms),
    ]);
  }
  lines.push(table(cmp));
  for (const f of r.floors) lines.push(`${f.label}: p50 ${ms(f.p50)}, p99 ${ms(f.p99)}`);
  lines.push(`first request through the daemon (starts its llama-server child, then generates): ${ms(r.firstRequestMs.daemonLlamaServer)}`);
  const cpuRows: string[][] = [["  mode, process", "main thread", "other threads", "total", "waiting"]];
  for (const x of r.results) {
    for (const p of x.cpu) {
      const c = p.perToken;
      cpuRows.push([`  ${x.mode} c=${x.concurrency}: ${p.label}`, c.mainUs.toFixed(0), c.otherUs.toFixed(0), (c.mainUs + c.otherUs).toFixed(0), c.waitUs.toFixed(0)]);
    }
  }
  if (cpuRows.length > 1) {
    lines.push("");
    lines.push("CPU per generated token, µs (per-thread run time from /proc/<pid>/task/*/schedstat during that mode's runs):");
    lines.push(table(cpuRows));
  }
  lines.push("");
  lines.push(
    `checks: every stream produced max_tokens: ${r.checks.allStreamsComplete ? "yes" : `no, ${r.checks.concurrentStreamsEndedEarly} concurrent streams ended their turn after >= 90 %`}; c=1 llama-server streams (direct and via daemon) with the same text: ${r.checks.sameTextC1}; ` +
      `node-llama-cpp text == llama-server text: ${r.checks.textsMatchAcrossEngines === null ? "n/a" : r.checks.textsMatchAcrossEngines ? "yes" : "no (different builds of llama.cpp; near-ties of a random model)"}`,
  );
  const retries = Object.entries(r.checks.connectionRetries);
  if (retries.length > 0)
    lines.push(`runs run again after a connection error (a kept-alive connection closed by the server): ${retries.map(([k, v]) => `${k} ${v}`).join(", ")}`);
  lines.push("");
  lines.push("targets (llama-server via daemon vs llama-server direct):");
  lines.push(table(r.targets.map((t) => ["  " + t.name, t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])));
  lines.push("");
  lines.push("notes: decode tok/s = (tokens - 1) / (last - first token) per run, all streams merged (aggregate at c>1), median over runs;");
  lines.push("       TTFT = request start -> first content chunk; ITL = gap between content chunks, pooled; whole = request start -> last");
  lines.push("       content chunk, p50 over streams. A relay that holds tokens back and sends them in bursts shows a later TTFT, ITL p50");
  lines.push("       near 0 and a decode rate above the engine's: read decode tok/s with TTFT and whole. engine tok/s = llama-server's own");
  lines.push("       timings.predicted_per_second (the daemon does not relay it). Every process shares the same CPUs with the client.");
  return lines.join("\n");
}
