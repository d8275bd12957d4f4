// `npm run bench -- bitnet`: Microsoft's BitNet llama-server used directly against the same binary behind the daemon
// (engine llama-server-bitnet, which the daemon picks for the I2_S file by itself), on the I2_S fixture that the
// fork's own generator and quantizer make (test/fixtures/ensureBitnetFixtures.ts); same threads, slots, context,
// prompt and max_tokens, both driven by the `openai` client, rounds alternating. Also, for reference, the same model
// before quantization (F32) on the standard llama-server engine: decode tok/s and the engine child's RSS.
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type OpenAI from "openai";
import { findLlamaServer } from "../src/native/findLlamaServer.js";
import { findFreePort } from "../src/supervisor/findFreePort.js";
import { ensureBitnetFixtures } from "../test/fixtures/ensureBitnetFixtures.js";
import { childPids, commandLine, killIfAlive, spawnTracked, waitHealthy, type TrackedChild } from "./childProcess.js";
import { checkComplete, runSettled } from "./llamaServerBench.js";
import { openaiClient, readRssBytes, startDaemon, streamChat, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { ms, signedMs, table } from "./report.js";
import { summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, StreamOptions, StreamSample, Streamer } from "./types.js";

const progress = (message: string) => process.stderr.write(`[bench bitnet] ${message}\n`);

export const BITNET_HELP = `npm run bench -- bitnet [options]

  --threads N           threads for every llama-server (default 1)
  --context-size N      context tokens per slot (default 1024)
  --concurrency N       slots (-np) and simultaneous streams for the concurrent case (default 4)
  --max-tokens N        tokens per request (default 128)
  --prompt TEXT         the user message
  --reps N              timed runs per mode at concurrency 1 (default 20)
  --reps-concurrent N   timed runs per mode at the concurrent case (default 10)
  --json                print the results as JSON
`;

interface Options {
  threads: number;
  contextSize: number;
  concurrency: number;
  maxTokens: number;
  prompt: string;
  reps: number;
  repsConcurrent: number;
  json: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      threads: { type: "string" },
      "context-size": { type: "string" },
      concurrency: { type: "string" },
      "max-tokens": { type: "string" },
      prompt: { type: "string" },
      reps: { type: "string" },
      "reps-concurrent": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    threads: integer("threads", values.threads, 1),
    contextSize: integer("context-size", values["context-size"], 1024),
    concurrency: integer("concurrency", values.concurrency, 4),
    maxTokens: integer("max-tokens", values["max-tokens"], 128),
    prompt: values.prompt ?? DEFAULT_PROMPT,
    reps: integer("reps", values.reps, 20),
    repsConcurrent: integer("reps-concurrent", values["reps-concurrent"], 10),
    json: values.json === true,
  };
}

type ModeName = "bitnet direct" | "bitnet via daemon" | "I2_S completions via daemon" | "F32 completions on llama-server via daemon";
const TARGETS = { decodeRatio: 0.98, ttftAddedP50Ms: 1 } as const;

interface BitnetReport {
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: {
    i2s: string;
    f32: string;
    i2sBytes: number;
    f32Bytes: number;
    bitnetBinary: string;
    standardBinary: string;
    threads: number;
    contextPerSlot: number;
    slots: number;
    maxTokens: number;
    args: string[];
  };
  results: { concurrency: number; mode: ModeName; summary: ConfigSummary }[];
  comparisons: {
    concurrency: number;
    decodeRatio: number;
    ttftAddedP50Ms: number;
    ttftAddedP99Ms: number;
    itlAddedP99Ms: number;
    aaDecodeRatio: number;
    aaTtftP50Ms: number;
  }[];
  rssBytes: { bitnetDirect: number | null; bitnetDaemonChild: number | null; f32DaemonChild: number | null };
  checks: { sameTextC1: string; concurrentStreamsEndedEarly: number };
  targets: { name: string; value: number; target: string; pass: boolean }[];
}

/** The fork's flags, as LlamaServerBackend builds them for the bitnet variant (no --jinja: the fork predates it). */
function bitnetArgs(model: string, port: number, o: Options): string[] {
  return [
    "--model",
    model,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--ctx-size",
    String(o.contextSize * o.concurrency),
    "--parallel",
    String(o.concurrency),
    "--threads",
    String(o.threads),
  ];
}

export async function runBitnetSuite(argv: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${BITNET_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(BITNET_HELP);
    return 0;
  }
  const options = o;
  const loadAvgStart = loadavg()[0] ?? 0;
  progress("fixtures (builds the BitNet llama-server and makes the I2_S model the first time)");
  const fx = await ensureBitnetFixtures();
  const standard = await findLlamaServer("standard", { env: process.env });
  if (standard.path === null) {
    process.stderr.write("bench bitnet: no standard llama-server binary (for the F32 reference); build it with native/build-llama-server.sh\n");
    return 1;
  }
  const tmp = await mkdtemp(join(tmpdir(), "tabagent-bench-bitnet-"));
  let direct: TrackedChild | null = null;
  let daemon: DaemonRunner | null = null;
  let children: number[] = [];
  try {
    const port = await findFreePort();
    const args = bitnetArgs(fx.i2sPath, port, options);
    progress(`starting the BitNet llama-server directly: ${args.join(" ")}`);
    direct = spawnTracked(fx.llamaServerBitnet, args);
    await waitHealthy(direct, `http://127.0.0.1:${port}/health`, 60_000);

    const configPath = join(tmp, "bench-config.json");
    await writeFile(
      configPath,
      JSON.stringify({
        host: "127.0.0.1",
        port: 0,
        gpu: "off",
        threads: options.threads,
        contextSize: options.contextSize,
        parallel: options.concurrency,
        idleTtlSeconds: 0,
        logLevel: "info",
        models: [
          // No engine named: detection sends the I2_S file to llama-server-bitnet.
          { id: "bench-bitnet", path: fx.i2sPath, llamaServerPath: fx.llamaServerBitnet },
          { id: "bench-f32", path: fx.f32Path, engine: "llama-server", llamaServerPath: standard.path },
        ],
      }),
    );
    daemon = await startDaemon({ serveArgs: ["--config", configPath], modelId: "bench-bitnet" });
    const d = daemon;
    const directClient = openaiClient(`http://127.0.0.1:${port}/v1`);
    const modes: { name: ModeName; streamer: Streamer }[] = [
      { name: "bitnet direct", streamer: { stream: (p, n, s) => streamChat(directClient, "bench", p, n, s) } },
      { name: "bitnet via daemon", streamer: d },
    ];
    // The reference pair uses text completions: the standard llama-server's chat parser (--jinja) refuses some of
    // the random model's output, and both models see the same raw prompt this way.
    const daemonClient = openaiClient(`${d.url}/v1`);
    const refModes: { name: ModeName; streamer: Streamer }[] = [
      { name: "I2_S completions via daemon", streamer: { stream: (p, n, s) => streamCompletion(daemonClient, "bench-bitnet", p, n, s) } },
      { name: "F32 completions on llama-server via daemon", streamer: { stream: (p, n, s) => streamCompletion(daemonClient, "bench-f32", p, n, s) } },
    ];

    progress("warm-up (the daemon starts its children now)");
    const warm: RunSample[] = [];
    for (const m of [...modes, ...refModes]) for (const c of [1, options.concurrency]) warm.push(await runSettled(m.streamer, c, options.prompt, options.maxTokens));
    checkComplete(warm, options.maxTokens);
    children = childPids(d.pid);
    const childRss = (model: string) => {
      const pid = children.find((p) => commandLine(p)?.includes(model));
      return pid === undefined ? null : readRssBytes(pid);
    };

    const levels = options.concurrency === 1 ? [1] : [1, options.concurrency];
    const collected = new Map<string, RunSample[]>();
    for (const c of levels) {
      const reps = c === 1 ? options.reps : options.repsConcurrent;
      progress(`concurrency ${c}: ${reps} rounds, order alternating`);
      for (let i = 0; i < reps; i++) {
        const order = i % 2 === 0 ? modes : [...modes].reverse();
        for (const m of order) {
          const key = `${c}|${m.name}`;
          collected.set(key, [...(collected.get(key) ?? []), await runSettled(m.streamer, c, options.prompt, options.maxTokens)]);
        }
      }
      // The reference pair: fewer rounds, reported, not targeted.
      for (let i = 0; i < Math.max(3, Math.ceil(reps / 2)); i++) {
        for (const m of i % 2 === 0 ? refModes : [...refModes].reverse()) {
          const key = `${c}|${m.name}`;
          collected.set(key, [...(collected.get(key) ?? []), await runSettled(m.streamer, c, options.prompt, options.maxTokens)]);
        }
      }
    }
    const endedEarly = checkComplete([...collected.values()].flat(), options.maxTokens);

    const results: BitnetReport["results"] = [];
    for (const c of levels) for (const m of [...modes, ...refModes]) results.push({ concurrency: c, mode: m.name, summary: summarize(collected.get(`${c}|${m.name}`)!) });
    const comparisons: BitnetReport["comparisons"] = [];
    const targets: BitnetReport["targets"] = [];
    for (const c of levels) {
      const runs = collected.get(`${c}|bitnet direct`)!;
      const a = summarize(collected.get(`${c}|bitnet via daemon`)!);
      const b = summarize(runs);
      // A/A: the direct runs split in two (even and odd rounds): how far apart the same thing measures here.
      const even = summarize(runs.filter((_, i) => i % 2 === 0));
      const odd = summarize(runs.filter((_, i) => i % 2 === 1));
      const k = {
        concurrency: c,
        decodeRatio: a.decodeTokPerSec / b.decodeTokPerSec,
        ttftAddedP50Ms: a.ttftMs.p50 - b.ttftMs.p50,
        ttftAddedP99Ms: a.ttftMs.p99 - b.ttftMs.p99,
        itlAddedP99Ms: a.itlMs.p99 - b.itlMs.p99,
        aaDecodeRatio: even.decodeTokPerSec / odd.decodeTokPerSec,
        aaTtftP50Ms: even.ttftMs.p50 - odd.ttftMs.p50,
      };
      comparisons.push(k);
      targets.push({ name: `decode tok/s daemon/direct, c=${c}`, value: k.decodeRatio, target: `>= ${TARGETS.decodeRatio}`, pass: k.decodeRatio >= TARGETS.decodeRatio });
      targets.push({
        name: `TTFT added p50 (ms), c=${c}`,
        value: k.ttftAddedP50Ms,
        target: `<= ${TARGETS.ttftAddedP50Ms}`,
        pass: k.ttftAddedP50Ms <= TARGETS.ttftAddedP50Ms,
      });
    }
    const c1 = [...(collected.get("1|bitnet direct") ?? []), ...(collected.get("1|bitnet via daemon") ?? [])].flat();
    const reference = c1[0]?.text ?? "";
    const cpuList = cpus();
    const report: BitnetReport = {
      machine: {
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model.trim() ?? "unknown",
        node: process.version,
        loadAvg1mStart: loadAvgStart,
        loadAvg1mEnd: loadavg()[0] ?? 0,
      },
      setup: {
        i2s: basename(fx.i2sPath),
        f32: basename(fx.f32Path),
        i2sBytes: (await stat(fx.i2sPath)).size,
        f32Bytes: (await stat(fx.f32Path)).size,
        bitnetBinary: fx.llamaServerBitnet,
        standardBinary: standard.path,
        threads: options.threads,
        contextPerSlot: options.contextSize,
        slots: options.concurrency,
        maxTokens: options.maxTokens,
        args: args.map((a) => (a === String(port) ? "PORT" : a)),
      },
      results,
      comparisons,
      rssBytes: { bitnetDirect: readRssBytes(direct.pid), bitnetDaemonChild: childRss(fx.i2sPath), f32DaemonChild: childRss(fx.f32Path) },
      checks: { sameTextC1: `${c1.filter((s) => s.text === reference).length}/${c1.length}`, concurrentStreamsEndedEarly: endedEarly },
      targets,
    };
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${format(report)}\n`);
    return 0;
  } finally {
    const code = await daemon?.stop();
    if (code !== undefined && code !== 0) progress(`warning: the daemon exited with code ${code}`);
    for (const pid of children) if (killIfAlive(pid, "llama-server")) progress(`warning: the daemon left llama-server ${pid} running; killed it`);
    await direct?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** One streamed text completion through the `openai` client, timestamped per content chunk. */
async function streamCompletion(client: OpenAI, model: string, prompt: string, maxTokens: number, options: StreamOptions = {}): Promise<StreamSample> {
  const startMs = options.startMs ?? performance.now();
  const arrivalsMs: number[] = [];
  let text = "";
  let usage: OpenAI.CompletionUsage | null = null;
  const stream = await client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.text;
    if (piece) {
      arrivalsMs.push(performance.now());
      text += piece;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  if (!usage) throw new Error("the stream ended without a usage chunk (stream_options.include_usage)");
  return { startMs, arrivalsMs, completionTokens: usage.completion_tokens, promptTokens: usage.prompt_tokens, text };
}

const mib = (b: number | null) => (b === null ? "n/a" : `${(b / 1048576).toFixed(1)} MiB`);

function format(r: BitnetReport): string {
  const { machine, setup } = r;
  const lines: string[] = [];
  lines.push(
    `tabagent bench bitnet: ${setup.i2s} (${mib(setup.i2sBytes)}) vs ${setup.f32} (${mib(setup.f32Bytes)}), threads ${setup.threads}, ${setup.slots} slots x ${setup.contextPerSlot} context, max_tokens ${setup.maxTokens}, temperature 0`,
  );
  lines.push(`BitNet llama-server ${setup.bitnetBinary}; args (direct, and what the daemon passes its child): ${setup.args.join(" ")}`);
  lines.push(`standard llama-server ${setup.standardBinary}`);
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load average ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  lines.push("");
  const rows: string[][] = [["mode", "conc", "runs", "decode tok/s", "(min..max)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "whole p50"]];
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
    ]);
  }
  lines.push(table(rows));
  lines.push("");
  const cmp: string[][] = [["daemon vs direct (BitNet)", "conc", "decode ratio", "TTFT +p50", "TTFT +p99", "ITL +p99", "A/A decode ratio", "A/A TTFT p50"]];
  for (const c of r.comparisons) {
    cmp.push([
      "bitnet via daemon vs bitnet direct",
      String(c.concurrency),
      `x${c.decodeRatio.toFixed(3)}`,
      signedMs(c.ttftAddedP50Ms),
      signedMs(c.ttftAddedP99Ms),
      signedMs(c.itlAddedP99Ms),
      `x${c.aaDecodeRatio.toFixed(3)}`,
      signedMs(c.aaTtftP50Ms),
    ]);
  }
  lines.push(table(cmp));
  lines.push("");
  const f = (mode: ModeName, c: number) => r.results.find((x) => x.mode === mode && x.concurrency === c)?.summary.decodeTokPerSec ?? Number.NaN;
  const rel = r.results
    .filter((x) => x.mode === "F32 completions on llama-server via daemon")
    .map((x) => {
      const i2s = f("I2_S completions via daemon", x.concurrency);
      return `c=${x.concurrency}: I2_S ${i2s.toFixed(0)} tok/s vs F32 ${x.summary.decodeTokPerSec.toFixed(0)} tok/s (x${(i2s / x.summary.decodeTokPerSec).toFixed(2)})`;
    });
  lines.push(`I2_S (BitNet engine) vs F32 (standard llama-server engine), text completions through the daemon: ${rel.join("; ")}`);
  lines.push(
    `RSS: BitNet llama-server direct ${mib(r.rssBytes.bitnetDirect)}, the daemon's BitNet child ${mib(r.rssBytes.bitnetDaemonChild)}, the daemon's F32 child ${mib(r.rssBytes.f32DaemonChild)}`,
  );
  lines.push(
    `checks: c=1 BitNet streams (direct and via daemon) with the same text: ${r.checks.sameTextC1}; concurrent streams that ended their turn after >= 90 %: ${r.checks.concurrentStreamsEndedEarly}`,
  );
  lines.push("");
  lines.push("targets (bitnet via daemon vs bitnet direct):");
  lines.push(table(r.targets.map((t) => ["  " + t.name, t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])));
  lines.push("");
  lines.push("notes: decode tok/s = (tokens - 1) / (last - first token) per run, streams merged, median over runs; TTFT = request start ->");
  lines.push("       first content chunk; A/A = the direct runs of even rounds against those of odd rounds (the noise band). The F32");
  lines.push("       reference runs on another engine and build: its tokens differ (I2_S also quantizes activations to 8 bits).");
  return lines.join("\n");
}
