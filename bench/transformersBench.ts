// `npm run bench -- transformers`: transformers' own generate() called directly in Python against the same model
// served by the daemon's transformers engine (its Python sidecar), same threads, prompt, max_tokens and greedy
// decoding; the daemon side is driven by the `openai` client over HTTP. Targets print PASS/MISS; exit code 0
// unless the measurement itself broke (no Python venv, a short stream, a crash).
import { execFileSync, spawn } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { ms, signedMs, table } from "./report.js";
import { summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, StreamSample } from "./types.js";
import { DEFAULT_PROMPT, integer } from "./options.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const progress = (message: string) => process.stderr.write(`[bench transformers] ${message}\n`);

const TRANSFORMERS_HELP = `npm run bench -- transformers [options]

  --model DIR        transformers causal LM folder (default: the generated tiny llama, make_tiny_llm.py)
  --threads N        torch CPU threads, both sides (default 1)
  --max-tokens N     tokens per request (default 128)
  --prompt TEXT      the user message
  --reps N           timed runs per side (default 10)
  --conc LIST        concurrent streams for the batching figures (default 1,4,8; the daemon gets --parallel max)
  --json             print the results as JSON
`;

// conc8OverConc1: the CPU target (issue 16); a GPU's is 4.
const TRANSFORMERS_TARGETS = { decodeRatio: 0.95, ttftAddedP50Ms: 5, conc8OverConc1: 1.5 } as const;

interface Options {
  model: string | null;
  threads: number;
  maxTokens: number;
  prompt: string;
  reps: number;
  conc: number[];
  json: boolean;
}

/** One concurrency level: `reps` runs of `conc` streams started together. */
interface ConcRow {
  conc: number;
  summary: ConfigSummary;
}

/** The direct side: one long-lived Python process, one `run` line per timed generate(). */
class DirectGenerate {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ReturnType<typeof spawn>) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  static async start(python: string, model: string, o: Options): Promise<{ direct: DirectGenerate; promptTokens: number }> {
    const script = resolve(ROOT, "native/python/bench/direct_generate.py");
    const child = spawn(python, [script, model, "--prompt", o.prompt, "--max-tokens", String(o.maxTokens), "--threads", String(o.threads)], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, HF_HUB_OFFLINE: "1" },
    });
    const direct = new DirectGenerate(child);
    const first = JSON.parse(await direct.next()) as { prompt_tokens: number };
    return { direct, promptTokens: first.prompt_tokens };
  }

  private async next(): Promise<string> {
    const line = await this.lines.next();
    if (line.done) throw new Error("the direct generate() process ended early");
    return line.value;
  }

  async run(): Promise<StreamSample> {
    this.child.stdin!.write("run\n");
    const r = JSON.parse(await this.next()) as { arrivals_ms: number[]; prompt_tokens: number; completion_tokens: number; text: string };
    return { startMs: 0, arrivalsMs: r.arrivals_ms, completionTokens: r.completion_tokens, promptTokens: r.prompt_tokens, text: r.text };
  }

  stop(): void {
    this.child.kill("SIGKILL");
  }
}

export async function runTransformersSuite(argv: string[]): Promise<number> {
  let o: Options;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: "string" },
        threads: { type: "string" },
        "max-tokens": { type: "string" },
        prompt: { type: "string" },
        reps: { type: "string" },
        conc: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      process.stdout.write(TRANSFORMERS_HELP);
      return 0;
    }
    o = {
      model: values.model ?? null,
      threads: integer("threads", values.threads, 1),
      maxTokens: integer("max-tokens", values["max-tokens"], 128),
      prompt: values.prompt ?? DEFAULT_PROMPT,
      reps: integer("reps", values.reps, 10),
      conc: concList(values.conc ?? "1,4,8"),
      json: values.json === true,
    };
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${TRANSFORMERS_HELP}`);
    return 2;
  }
  // The same venv the daemon finds (native/setup-python.sh): created here if missing, with pip's progress shown.
  const venv = execFileSync(resolve(ROOT, "native/setup-python.sh"), ["--dev", "--print-path"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const python = `${venv}/bin/python`;
  const model = o.model !== null ? resolve(o.model) : resolve(ROOT, ".fixtures/python/bench-tiny-llm");
  if (o.model === null) {
    // Deterministic, so rewriting it each run costs a second and never changes what is measured.
    execFileSync(python, [resolve(ROOT, "native/python/fixtures/make_tiny_llm.py"), model], { stdio: ["ignore", "ignore", "ignore"] });
  }
  progress(`model ${model}, python ${python}`);

  let daemon: DaemonRunner | null = null;
  let direct: DirectGenerate | null = null;
  try {
    const started = await DirectGenerate.start(python, model, o);
    direct = started.direct;
    daemon = await startDaemon({
      serveArgs: [
        "--model",
        `bench-hf=${model}`,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        String(o.threads),
        "--parallel",
        String(Math.max(1, ...o.conc)),
        // The interpreter the direct side runs, whatever the daemon's own lookup would pick.
        "--python",
        python,
        "--idle-ttl",
        "0",
        "--log-level",
        "info",
      ],
      modelId: "bench-hf",
    });
    const loadStart = performance.now();
    await daemon.stream(o.prompt, 2);
    const firstRequestMs = performance.now() - loadStart;
    progress(`daemon's first request (sidecar start + load) ${firstRequestMs.toFixed(0)} ms; warming up both sides`);
    await direct.run();
    await daemon.stream(o.prompt, o.maxTokens);

    const runs = { direct: [] as RunSample[], daemon: [] as RunSample[] };
    for (let i = 0; i < o.reps; i++) {
      for (const side of i % 2 === 0 ? (["direct", "daemon"] as const) : (["daemon", "direct"] as const)) {
        const sample = side === "direct" ? await direct.run() : await daemon.stream(o.prompt, o.maxTokens);
        if (sample.completionTokens !== o.maxTokens) {
          throw new Error(`${side} produced ${sample.completionTokens} of ${o.maxTokens} tokens: the model ended its turn; try another --prompt`);
        }
        runs[side].push([sample]);
      }
    }
    const d = summarize(runs.direct);
    const s = summarize(runs.daemon);
    // A/A: the direct side's odd runs against its even runs, the noise band any ratio here sits in.
    const aa = summarize(runs.direct.filter((_, i) => i % 2 === 1)).decodeTokPerSec / summarize(runs.direct.filter((_, i) => i % 2 === 0)).decodeTokPerSec;
    const conc: ConcRow[] = [];
    for (const c of o.conc) {
      const concRuns: RunSample[] = [];
      for (let i = 0; i < o.reps; i++) {
        const startMs = performance.now();
        const run = await Promise.all(Array.from({ length: c }, () => daemon!.stream(o.prompt, o.maxTokens, { startMs })));
        for (const sample of run) {
          if (sample.completionTokens !== o.maxTokens) throw new Error(`a stream at concurrency ${c} produced ${sample.completionTokens} of ${o.maxTokens} tokens`);
        }
        concRuns.push(run);
      }
      conc.push({ conc: c, summary: summarize(concRuns) });
      progress(`concurrency ${c}: aggregate ${conc.at(-1)!.summary.decodeTokPerSec.toFixed(1)} tok/s`);
    }
    const one = conc.find((r) => r.conc === 1);
    const eight = conc.find((r) => r.conc === 8);
    const sameText = runs.direct[0]![0]!.text === runs.daemon[0]![0]!.text;
    const decodeRatio = s.decodeTokPerSec / d.decodeTokPerSec;
    const ttftAdded = s.ttftMs.p50 - d.ttftMs.p50;
    const targets = [
      {
        name: "decode tok/s, daemon / direct generate()",
        value: decodeRatio,
        target: `>= ${TRANSFORMERS_TARGETS.decodeRatio}`,
        pass: decodeRatio >= TRANSFORMERS_TARGETS.decodeRatio,
      },
      { name: "TTFT added p50", value: ttftAdded, target: `<= ${TRANSFORMERS_TARGETS.ttftAddedP50Ms} ms`, pass: ttftAdded <= TRANSFORMERS_TARGETS.ttftAddedP50Ms },
    ];
    if (one && eight) {
      const scale = eight.summary.decodeTokPerSec / one.summary.decodeTokPerSec;
      targets.push({
        name: "aggregate decode, concurrency 8 / 1 (CPU target)",
        value: scale,
        target: `>= ${TRANSFORMERS_TARGETS.conc8OverConc1}`,
        pass: scale >= TRANSFORMERS_TARGETS.conc8OverConc1,
      });
    }
    const report = {
      setup: { model, threads: o.threads, maxTokens: o.maxTokens, promptTokens: started.promptTokens, reps: o.reps },
      direct: d,
      daemon: s,
      sameText,
      firstRequestMs,
      aaRatio: aa,
      conc,
      targets,
    };
    if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(formatTransformers(report));
    return 0;
  } catch (err) {
    process.stderr.write(`bench transformers: ${(err as Error).message}\n`);
    return 1;
  } finally {
    direct?.stop();
    await daemon?.stop();
  }
}

function formatTransformers(r: {
  setup: { model: string; threads: number; maxTokens: number; promptTokens: number; reps: number };
  direct: ConfigSummary;
  daemon: ConfigSummary;
  sameText: boolean;
  firstRequestMs: number;
  aaRatio: number;
  conc: ConcRow[];
  targets: { name: string; value: number; target: string; pass: boolean }[];
}): string {
  const row = (name: string, x: ConfigSummary) => [name, x.decodeTokPerSec.toFixed(1), ms(x.ttftMs.p50), ms(x.ttftMs.p99), ms(x.itlMs.p50), ms(x.itlMs.p99)];
  return [
    `transformers: ${r.setup.model}`,
    `  threads ${r.setup.threads}, prompt ${r.setup.promptTokens} tokens, ${r.setup.maxTokens} tokens per run, ${r.setup.reps} runs per side, greedy`,
    "",
    table([["side", "decode tok/s (median)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99"], row("generate() direct", r.direct), row("daemon (sidecar)", r.daemon)]),
    "",
    `  decode ratio daemon/direct: ${(r.daemon.decodeTokPerSec / r.direct.decodeTokPerSec).toFixed(3)}; TTFT added p50 ${signedMs(r.daemon.ttftMs.p50 - r.direct.ttftMs.p50)}`,
    `  same text on both sides: ${r.sameText ? "yes" : "NO"}; daemon's first request (sidecar start + load): ${r.firstRequestMs.toFixed(0)} ms`,
    `  A/A noise band (direct odd runs / even runs): ${r.aaRatio.toFixed(3)}`,
    "",
    table([
      ["concurrency", "aggregate decode tok/s (median)", "per stream", "TTFT p50", "TTFT p99", "ITL p50"],
      ...r.conc.map((c) => [
        String(c.conc),
        c.summary.decodeTokPerSec.toFixed(1),
        (c.summary.decodeTokPerSec / c.conc).toFixed(1),
        ms(c.summary.ttftMs.p50),
        ms(c.summary.ttftMs.p99),
        ms(c.summary.itlMs.p50),
      ]),
    ]),
    "",
    ...r.targets.map((t) => `  ${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.value.toFixed(3)} (target ${t.target})`),
    "",
  ].join("\n");
}

function concList(text: string): number[] {
  const list = text.split(",").map((part) => integer("conc", part.trim(), 1));
  if (list.some((c) => c < 1 || c > 64)) throw new Error("--conc takes concurrency levels between 1 and 64, comma-separated");
  return list;
}
