// `npm run bench -- litert`: LiteRT-LM's Python API used directly against the same bundle served by the daemon's
// LiteRT engine (its supervised child), same threads, prompt (the bundle's chat template), max_tokens and greedy
// decoding; the daemon side is driven by the `openai` client over HTTP, rounds alternate. Targets print PASS/MISS;
// the exit code is 0 unless the measurement itself broke (no venv, a short stream, a crash).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureLitertFixtures, litertDevVenv } from "../test/fixtures/ensureLitertFixtures.js";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { ms, signedMs, table } from "./report.js";
import { summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, StreamSample } from "./types.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const progress = (message: string) => process.stderr.write(`[bench litert] ${message}\n`);

const LITERT_HELP = `npm run bench -- litert [options]

  --model FILE       a .litertlm or LLM .task bundle with a chat template (default: the tiny llama converted by
                     native/python/fixtures/make_litert_bundle.py)
  --threads N        LiteRT-LM CPU threads, both sides (default 1)
  --max-tokens N     tokens per request (default 128; the fixture's context is 256)
  --prompt TEXT      the user message
  --reps N           timed runs per side (default 10)
  --json             print the results as JSON
`;

const LITERT_TARGETS = { decodeRatio: 0.95, ttftAddedP50Ms: 5 } as const;

interface Options {
  model: string | null;
  threads: number;
  maxTokens: number;
  prompt: string;
  reps: number;
  json: boolean;
}

/** The direct side: one long-lived Python process (tabagent_litert.bench_direct), one `run` line per generation. */
class DirectLiteRt {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ReturnType<typeof spawn>) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  static async start(python: string, model: string, o: Options, cacheDir: string): Promise<{ direct: DirectLiteRt; promptTokens: number }> {
    const args = [
      "-m",
      "tabagent_litert.bench_direct",
      model,
      "--prompt",
      o.prompt,
      "--max-tokens",
      String(o.maxTokens),
      "--threads",
      String(o.threads),
      "--cache-dir",
      cacheDir,
    ];
    const child = spawn(python, args, { cwd: resolve(ROOT, "native/python"), stdio: ["pipe", "pipe", "inherit"] });
    const direct = new DirectLiteRt(child);
    const first = JSON.parse(await direct.next()) as { prompt_tokens: number };
    return { direct, promptTokens: first.prompt_tokens };
  }

  private async next(): Promise<string> {
    const line = await this.lines.next();
    if (line.done) throw new Error("the direct LiteRT-LM process ended early");
    return line.value;
  }

  async run(): Promise<StreamSample> {
    this.child.stdin!.write("run\n");
    const r = JSON.parse(await this.next()) as { arrivals_ms: number[]; completion_tokens: number; text: string };
    return { startMs: 0, arrivalsMs: r.arrivals_ms, completionTokens: r.completion_tokens, promptTokens: 0, text: r.text };
  }

  stop(): void {
    this.child.kill("SIGKILL");
  }
}

export async function runLitertSuite(argv: string[]): Promise<number> {
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
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      process.stdout.write(LITERT_HELP);
      return 0;
    }
    o = {
      model: values.model ?? null,
      threads: integer("threads", values.threads, 1),
      maxTokens: integer("max-tokens", values["max-tokens"], 128),
      prompt: values.prompt ?? DEFAULT_PROMPT,
      reps: integer("reps", values.reps, 10),
      json: values.json === true,
    };
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${LITERT_HELP}`);
    return 2;
  }
  let daemon: DaemonRunner | null = null;
  let direct: DirectLiteRt | null = null;
  const cacheDir = mkdtempSync(join(tmpdir(), "tabagent-bench-litert-"));
  try {
    // The LiteRT dev venv runs both sides (it holds the runtime's pins), and the fixture's converter.
    const python = join(await litertDevVenv(), "bin", "python");
    const model = o.model !== null ? resolve(o.model) : (await ensureLitertFixtures()).litertlm;
    progress(`model ${model}, python ${python}`);
    const started = await DirectLiteRt.start(python, model, o, cacheDir);
    direct = started.direct;
    daemon = await startDaemon({
      serveArgs: ["--model", `bench-litert=${model}`, "--host", "127.0.0.1", "--port", "0", "--threads", String(o.threads), "--idle-ttl", "0", "--log-level", "info"],
      modelId: "bench-litert",
      env: { TABAGENT_LITERT_PYTHON: python },
    });
    const loadStart = performance.now();
    await daemon.stream(o.prompt, 2);
    const firstRequestMs = performance.now() - loadStart;
    progress(`daemon's first request (child start + load) ${firstRequestMs.toFixed(0)} ms; warming up both sides`);
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
    const aa = summarize(runs.direct.filter((_, i) => i % 2 === 1)).decodeTokPerSec / summarize(runs.direct.filter((_, i) => i % 2 === 0)).decodeTokPerSec;
    const decodeRatio = s.decodeTokPerSec / d.decodeTokPerSec;
    const ttftAdded = s.ttftMs.p50 - d.ttftMs.p50;
    const targets = [
      {
        name: "decode tok/s, daemon / LiteRT-LM direct",
        value: decodeRatio,
        target: `>= ${LITERT_TARGETS.decodeRatio}`,
        pass: decodeRatio >= LITERT_TARGETS.decodeRatio,
      },
      { name: "TTFT added p50", value: ttftAdded, target: `<= ${LITERT_TARGETS.ttftAddedP50Ms} ms`, pass: ttftAdded <= LITERT_TARGETS.ttftAddedP50Ms },
    ];
    const report = {
      setup: { model, threads: o.threads, maxTokens: o.maxTokens, promptTokens: started.promptTokens, reps: o.reps },
      direct: d,
      daemon: s,
      sameText: runs.direct[0]![0]!.text === runs.daemon[0]![0]!.text,
      firstRequestMs,
      aaRatio: aa,
      targets,
    };
    if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      const row = (name: string, x: ConfigSummary) => [name, x.decodeTokPerSec.toFixed(1), ms(x.ttftMs.p50), ms(x.ttftMs.p99), ms(x.itlMs.p50), ms(x.itlMs.p99)];
      process.stdout.write(
        [
          `litert: ${model}`,
          `  threads ${o.threads}, prompt ${started.promptTokens} tokens, ${o.maxTokens} tokens per run, ${o.reps} runs per side, greedy`,
          "",
          table([["side", "decode tok/s (median)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99"], row("LiteRT-LM direct", d), row("daemon (litert)", s)]),
          "",
          `  decode ratio daemon/direct: ${decodeRatio.toFixed(3)}; TTFT added p50 ${signedMs(ttftAdded)}`,
          `  same text on both sides: ${report.sameText ? "yes" : "NO"}; daemon's first request (child start + load): ${firstRequestMs.toFixed(0)} ms`,
          `  A/A noise band (direct odd runs / even runs): ${aa.toFixed(3)}`,
          "",
          ...targets.map((t) => `  ${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.value.toFixed(3)} (target ${t.target})`),
          "",
        ].join("\n"),
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`bench litert: ${(err as Error).message}\n`);
    return 1;
  } finally {
    direct?.stop();
    await daemon?.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}
