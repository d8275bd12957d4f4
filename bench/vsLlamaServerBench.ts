// `npm run bench -- vs-llama-server`: what a user gets from the daemon's GGUF path against llama-server run directly
// (what Ollama and llama.cpp users run). Modes, same binary, model, threads and slots, all driven by the `openai`
// client, the order rotating every round:
//   llama-server direct      the binary on its own port (twice, as two modes: A and A/A, for the noise band)
//   daemon default path      a model entry with no engine: `ggufEngine: auto` picks what it picks on this machine
//   daemon llama-server      the same model with `engine: llama-server`
//   daemon in-process        the same model with `engine: node-llama-cpp` (the previous default; reference)
// on the tiny test model and a ~26 M-param model (bench/makeBenchModel.ts), at concurrency 1, 4 and 8.
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { APIConnectionError } from "openai";
import { detectSource } from "../src/detection/detectSource.js";
import { findLlamaServer } from "../src/native/findLlamaServer.js";
import { findFreePort } from "../src/supervisor/findFreePort.js";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { writeTinyChatModel } from "../test/fixtures/makeTinyChatModel.js";
import { childPids, commandLine, killIfAlive, spawnTracked, waitHealthy, type TrackedChild } from "./childProcess.js";
import { addCpu, withCpuTime, ZERO_CPU, type CpuTime } from "./cpuTime.js";
import { runSettled } from "./llamaServerBench.js";
import { openaiClient, startDaemon, streamChat, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { ms, signedMs, table } from "./report.js";
import { median, summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, Streamer } from "./types.js";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const MEDIUM_MODEL = fileURLToPath(new URL("../.fixtures/bench/bench-medium.gguf", import.meta.url));
const progress = (message: string) => process.stderr.write(`[bench vs-llama-server] ${message}\n`);

export const VS_LLAMA_SERVER_HELP = `npm run bench -- vs-llama-server [options]

  --model PATH          a GGUF chat model; repeatable (default: the tiny test model and a generated ~26 M-param one)
  --llama-server PATH   llama-server binary (default: findLlamaServer("standard"), as the daemon looks it up)
  --threads N           llama.cpp threads, every mode (default 1)
  --context-size N      context tokens per slot (default 1024)
  --levels LIST         concurrency levels, comma separated (default 1,4,8); slots = the largest
  --max-tokens N        tokens per request (default 256 on the tiny model, 64 on the others)
  --reps N              rounds at concurrency 1 (default 12 tiny, 4 others); at higher levels half as many
  --no-in-process       skip the daemon in-process (node-llama-cpp) reference mode
  --json                print the results as JSON
`;

interface Options {
  models: string[] | null;
  binary: string | null;
  threads: number;
  contextSize: number;
  levels: number[];
  maxTokens: number | null;
  reps: number | null;
  inProcess: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string", multiple: true },
      "llama-server": { type: "string" },
      threads: { type: "string" },
      "context-size": { type: "string" },
      levels: { type: "string" },
      "max-tokens": { type: "string" },
      reps: { type: "string" },
      "no-in-process": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  const levels = (values.levels ?? "1,4,8").split(",").map((v) => integer("levels", v.trim(), 1));
  if (levels.length === 0 || levels.some((l) => l < 1 || l > 64)) throw new Error("--levels takes numbers from 1 to 64");
  return {
    models: values.model ?? null,
    binary: values["llama-server"] ?? null,
    threads: integer("threads", values.threads, 1),
    contextSize: integer("context-size", values["context-size"], 1024),
    levels: [...new Set(levels)].sort((a, b) => a - b),
    maxTokens: values["max-tokens"] === undefined ? null : integer("max-tokens", values["max-tokens"], 256),
    reps: values.reps === undefined ? null : integer("reps", values.reps, 12),
    inProcess: values["no-in-process"] !== true,
    json: values.json === true,
  };
}

type ModeName = "llama-server direct" | "llama-server direct (A/A)" | "daemon default path" | "daemon llama-server engine" | "daemon in-process";

interface Mode {
  name: ModeName;
  streamer: Streamer;
  /** The daemon's pid for its modes: its CPU per token is reported. */
  daemonPid: number | null;
}

interface Row {
  concurrency: number;
  mode: ModeName;
  summary: ConfigSummary;
  /** Median over streams of each stream's own decode rate. */
  perStreamTokPerSec: number;
  /** Daemon process CPU (all threads) per streamed token, µs; null for the direct modes. */
  daemonCpuUsPerToken: number | null;
}

interface Comparison {
  concurrency: number;
  of: ModeName;
  decodeRatio: number;
  perStreamRatio: number;
  ttftAddedP50Ms: number;
  ttftAddedP99Ms: number;
  itlAddedP99Ms: number;
}

interface ModelReport {
  model: string;
  sizeBytes: number;
  maxTokens: number;
  slots: number;
  reps: number;
  defaultPathEngine: string;
  defaultPathReason: string;
  rows: Row[];
  comparisons: Comparison[];
  targets: { name: string; value: number; target: string; pass: boolean }[];
  endedEarly: number;
  retries: Partial<Record<ModeName, number>>;
}

const TARGETS = { decodeC1: 0.98, aggregate: 0.95, ttftAddedP50Ms: 1, itlAddedP99Ms: 1, daemonCpuUsPerToken: 20 } as const;

/**
 * Alone, every stream must produce max_tokens (else the prompt is wrong for this model). With several streams in one
 * batch llama.cpp's numerics change and a near-tie of a random model can flip to end-of-turn early: counted and
 * reported (rates use the tokens each stream really produced).
 */
function shortStreams(runs: RunSample[], maxTokens: number): number {
  const alone = runs.filter((r) => r.length === 1).flat();
  const short = alone.filter((s) => s.completionTokens !== maxTokens);
  if (short.length > 0) throw new Error(`${short.length} single streams ended early (got ${short.map((s) => s.completionTokens).join(", ")} of ${maxTokens} tokens)`);
  return runs
    .filter((r) => r.length > 1)
    .flat()
    .filter((s) => s.completionTokens !== maxTokens).length;
}

function perStreamRate(runs: RunSample[]): number {
  const rates = runs.flat().flatMap((s) => {
    const n = s.arrivalsMs.length;
    return n > 1 ? [((s.completionTokens - 1) * 1000) / (s.arrivalsMs[n - 1]! - s.arrivalsMs[0]!)] : [];
  });
  return median(rates);
}

async function benchModel(modelPath: string, binary: string, o: Options, tiny: boolean): Promise<ModelReport> {
  const slots = Math.max(...o.levels);
  const maxTokens = o.maxTokens ?? (tiny ? 256 : 64);
  const reps = o.reps ?? (tiny ? 12 : 4);
  const trained = (await detectSource(modelPath))[0]?.contextLength ?? null;
  const ctxPerSlot = trained === null ? o.contextSize : Math.min(o.contextSize, trained);
  const tmp = await mkdtemp(join(tmpdir(), "tabagent-bench-vs-"));
  let direct: TrackedChild | null = null;
  let daemon: DaemonRunner | null = null;
  let children: number[] = [];
  try {
    const port = await findFreePort();
    // The flags LlamaServerBackend gives its child for these settings (src/backends/llamaServer/LlamaServerBackend.ts).
    const args = [
      "--model",
      modelPath,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--ctx-size",
      String(ctxPerSlot * slots),
      "--parallel",
      String(slots),
      "--threads",
      String(o.threads),
      "--jinja",
    ];
    direct = spawnTracked(binary, args);
    await waitHealthy(direct, `http://127.0.0.1:${port}/health`, 60_000);
    const configPath = join(tmp, "config.json");
    const models = [
      { id: "default", path: modelPath },
      { id: "ls", path: modelPath, engine: "llama-server" },
      ...(o.inProcess ? [{ id: "nlc", path: modelPath, engine: "node-llama-cpp" }] : []),
    ];
    const config = {
      host: "127.0.0.1",
      port: 0,
      gpu: "off",
      threads: o.threads,
      contextSize: o.contextSize,
      parallel: slots,
      idleTtlSeconds: 0,
      logLevel: "info",
      ggufEngine: "auto",
      models,
    };
    await writeFile(configPath, JSON.stringify(config, null, 2));
    daemon = await startDaemon({ serveArgs: ["--config", configPath], modelId: "default", env: { TABAGENT_LLAMA_SERVER: binary } });
    const d = daemon;
    const card = (await (await fetch(`${d.url}/v1/models/default`)).json()) as { tabagent?: { engine?: string; engine_reason?: string } };
    const directClient = openaiClient(`http://127.0.0.1:${port}/v1`);
    const directStreamer: Streamer = { stream: (p, n, s) => streamChat(directClient, "bench", p, n, s) };
    const modes: Mode[] = [
      { name: "llama-server direct", streamer: directStreamer, daemonPid: null },
      { name: "llama-server direct (A/A)", streamer: directStreamer, daemonPid: null },
      { name: "daemon default path", streamer: d.streamerFor("default"), daemonPid: d.pid },
      { name: "daemon llama-server engine", streamer: d.streamerFor("ls"), daemonPid: d.pid },
      ...(o.inProcess ? [{ name: "daemon in-process" as const, streamer: d.streamerFor("nlc"), daemonPid: d.pid }] : []),
    ];
    progress(`${basename(modelPath)}: warm-up (the daemon starts its llama-server children)`);
    const warm: RunSample[] = [];
    for (const m of modes) for (const c of o.levels) warm.push(await runSettled(m.streamer, c, DEFAULT_PROMPT, maxTokens));
    children = childPids(d.pid).filter((p) => commandLine(p)?.includes("llama-server"));
    shortStreams(warm, maxTokens);

    const collected = new Map<string, { runs: RunSample[]; cpu: CpuTime; tokens: number }>();
    const retries: Partial<Record<ModeName, number>> = {};
    for (const c of o.levels) {
      const rounds = c === 1 ? reps : Math.max(2, Math.ceil(reps / 2));
      progress(`${basename(modelPath)}: concurrency ${c}, ${rounds} rounds of ${modes.length} modes`);
      for (let i = 0; i < rounds; i++) {
        for (let k = 0; k < modes.length; k++) {
          const m = modes[(k + i) % modes.length]!;
          const key = `${c}|${m.name}`;
          const entry = collected.get(key) ?? { runs: [], cpu: ZERO_CPU, tokens: 0 };
          collected.set(key, entry);
          for (let attempt = 0; ; attempt++) {
            try {
              const { result, cpu } = await withCpuTime(m.daemonPid === null ? [] : [m.daemonPid], () => runSettled(m.streamer, c, DEFAULT_PROMPT, maxTokens));
              entry.runs.push(result);
              entry.tokens += result.reduce((n, s) => n + s.completionTokens, 0);
              if (cpu[0]) entry.cpu = addCpu(entry.cpu, cpu[0]);
              break;
            } catch (err) {
              // cpp-httplib sometimes closes a kept-alive connection as the client reuses it: run again, counted.
              if (err instanceof APIConnectionError && attempt < 2) {
                retries[m.name] = (retries[m.name] ?? 0) + 1;
                continue;
              }
              throw err;
            }
          }
        }
      }
    }
    const endedEarly = shortStreams(
      [...collected.values()].flatMap((e) => e.runs),
      maxTokens,
    );
    const rows: Row[] = [];
    for (const c of o.levels) {
      for (const m of modes) {
        const e = collected.get(`${c}|${m.name}`)!;
        rows.push({
          concurrency: c,
          mode: m.name,
          summary: summarize(e.runs),
          perStreamTokPerSec: perStreamRate(e.runs),
          daemonCpuUsPerToken: m.daemonPid === null || e.tokens === 0 ? null : (e.cpu.mainNs + e.cpu.otherNs) / 1000 / e.tokens,
        });
      }
    }
    const comparisons: Comparison[] = [];
    for (const c of o.levels) {
      const base = rows.find((r) => r.concurrency === c && r.mode === "llama-server direct")!;
      for (const r of rows.filter((x) => x.concurrency === c && x.mode !== "llama-server direct")) {
        comparisons.push({
          concurrency: c,
          of: r.mode,
          decodeRatio: r.summary.decodeTokPerSec / base.summary.decodeTokPerSec,
          perStreamRatio: r.perStreamTokPerSec / base.perStreamTokPerSec,
          ttftAddedP50Ms: r.summary.ttftMs.p50 - base.summary.ttftMs.p50,
          ttftAddedP99Ms: r.summary.ttftMs.p99 - base.summary.ttftMs.p99,
          itlAddedP99Ms: r.summary.itlMs.p99 - base.summary.itlMs.p99,
        });
      }
    }
    const targets: ModelReport["targets"] = [];
    const cmp = (c: number, of: ModeName) => comparisons.find((x) => x.concurrency === c && x.of === of);
    for (const of of ["daemon default path", "daemon llama-server engine"] as const) {
      for (const c of o.levels) {
        const x = cmp(c, of)!;
        const need = c === 1 ? TARGETS.decodeC1 : TARGETS.aggregate;
        targets.push({ name: `${of}: ${c === 1 ? "decode" : "aggregate"} vs direct, c=${c}`, value: x.decodeRatio, target: `>= ${need}`, pass: x.decodeRatio >= need });
      }
      const x1 = cmp(1, of);
      if (x1) {
        targets.push({
          name: `${of}: TTFT added p50 (ms), c=1`,
          value: x1.ttftAddedP50Ms,
          target: `<= ${TARGETS.ttftAddedP50Ms}`,
          pass: x1.ttftAddedP50Ms <= TARGETS.ttftAddedP50Ms,
        });
        targets.push({
          name: `${of}: inter-token added p99 (ms), c=1`,
          value: x1.itlAddedP99Ms,
          target: `<= ${TARGETS.itlAddedP99Ms}`,
          pass: x1.itlAddedP99Ms <= TARGETS.itlAddedP99Ms,
        });
      }
      const cpu = rows.find((r) => r.concurrency === 1 && r.mode === of)?.daemonCpuUsPerToken;
      if (cpu !== null && cpu !== undefined) {
        targets.push({
          name: `${of}: daemon CPU per streamed token (µs), c=1`,
          value: cpu,
          target: `<= ${TARGETS.daemonCpuUsPerToken}`,
          pass: cpu <= TARGETS.daemonCpuUsPerToken,
        });
      }
    }
    return {
      model: basename(modelPath),
      sizeBytes: (await stat(modelPath)).size,
      maxTokens,
      slots,
      reps,
      defaultPathEngine: card.tabagent?.engine ?? "?",
      defaultPathReason: card.tabagent?.engine_reason ?? "?",
      rows,
      comparisons,
      targets,
      endedEarly,
      retries,
    };
  } finally {
    await daemon?.stop();
    for (const pid of children) if (killIfAlive(pid, "llama-server")) progress(`warning: the daemon left llama-server ${pid} running; killed it`);
    await direct?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

export async function runVsLlamaServerSuite(argv: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${VS_LLAMA_SERVER_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(VS_LLAMA_SERVER_HELP);
    return 0;
  }
  const found = o.binary ? { path: o.binary, source: "flag" } : await findLlamaServer("standard", { env: process.env });
  if (found.path === null) {
    process.stderr.write("bench vs-llama-server: no llama-server binary found; build one with native/build-llama-server.sh or pass --llama-server PATH\n");
    return 1;
  }
  const loadStart = loadavg()[0] ?? 0;
  let models: { path: string; tiny: boolean }[];
  if (o.models) models = o.models.map((m) => ({ path: resolve(m), tiny: false }));
  else {
    const tiny = (await ensureFixtures(FIXTURES_DIR)).chatModelPath;
    if (!(await stat(MEDIUM_MODEL).catch(() => null))) {
      progress(`writing ${MEDIUM_MODEL}`);
      await mkdir(dirname(MEDIUM_MODEL), { recursive: true });
      await writeTinyChatModel(MEDIUM_MODEL, { nEmbd: 512, nLayer: 8, nHead: 8, nFf: 1536, eogBias: -40 });
    }
    models = [
      { path: tiny, tiny: true },
      { path: MEDIUM_MODEL, tiny: false },
    ];
  }
  const reports: ModelReport[] = [];
  for (const m of models) reports.push(await benchModel(m.path, found.path, o, m.tiny));
  const cpu = cpus();
  const machine = { cpus: cpu.length, cpuModel: cpu[0]?.model.trim() ?? "unknown", node: process.version, loadAvg1mStart: loadStart, loadAvg1mEnd: loadavg()[0] ?? 0 };
  if (o.json) process.stdout.write(`${JSON.stringify({ machine, binary: found.path, threads: o.threads, levels: o.levels, reports }, null, 2)}\n`);
  else process.stdout.write(`${formatReport(machine, found.path, o, reports)}\n`);
  return 0;
}

function formatReport(
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number },
  binary: string,
  o: Options,
  reports: ModelReport[],
): string {
  const lines: string[] = [];
  lines.push(`tabagent bench vs-llama-server: threads ${o.threads}, levels ${o.levels.join("/")}, temperature 0, llama-server ${binary}`);
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  for (const r of reports) {
    lines.push("");
    lines.push(`== ${r.model} (${(r.sizeBytes / 1e6).toFixed(1)} MB), ${r.slots} slots, max_tokens ${r.maxTokens}, ${r.reps} rounds at c=1`);
    lines.push(`   default path: ${r.defaultPathEngine} (${r.defaultPathReason})`);
    const rows: string[][] = [["mode", "conc", "aggregate tok/s", "per stream tok/s", "TTFT p50", "TTFT p99", "ITL p99", "daemon CPU/token"]];
    for (const x of r.rows) {
      rows.push([
        x.mode,
        String(x.concurrency),
        x.summary.decodeTokPerSec.toFixed(0),
        x.perStreamTokPerSec.toFixed(0),
        ms(x.summary.ttftMs.p50),
        ms(x.summary.ttftMs.p99),
        ms(x.summary.itlMs.p99),
        x.daemonCpuUsPerToken === null ? "" : `${x.daemonCpuUsPerToken.toFixed(0)} µs`,
      ]);
    }
    lines.push(table(rows));
    lines.push("");
    const cmp: string[][] = [["vs llama-server direct", "conc", "aggregate", "per stream", "TTFT +p50", "TTFT +p99", "ITL +p99"]];
    for (const c of r.comparisons) {
      cmp.push([
        c.of,
        String(c.concurrency),
        `x${c.decodeRatio.toFixed(3)}`,
        `x${c.perStreamRatio.toFixed(3)}`,
        signedMs(c.ttftAddedP50Ms),
        signedMs(c.ttftAddedP99Ms),
        signedMs(c.itlAddedP99Ms),
      ]);
    }
    lines.push(table(cmp));
    lines.push("   (the A/A row is llama-server direct against itself in the same rounds: the noise band of every ratio above)");
    if (r.endedEarly > 0)
      lines.push(`   ${r.endedEarly} concurrent streams ended their turn before max_tokens (batched numerics of a random model; counted, not failed)`);
    const retried = Object.entries(r.retries);
    if (retried.length > 0) lines.push(`   runs repeated after a kept-alive connection was closed by llama-server: ${retried.map(([k, v]) => `${k} ${v}`).join(", ")}`);
    lines.push("");
    lines.push(table(r.targets.map((t) => ["  " + t.name, t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])));
  }
  lines.push("");
  lines.push("notes: aggregate = (tokens - 1) / (last - first token) over a round's streams, median over rounds; per stream = each");
  lines.push("       stream's own rate, median; TTFT from request start; ITL = gaps between content chunks, pooled. Daemon CPU per");
  lines.push("       token = the daemon process's run time (all threads; not its llama-server children) / streamed tokens.");
  return lines.join("\n");
}
