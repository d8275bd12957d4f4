// `npm run bench -- onnx`: the daemon's ONNX Runtime engine against the same graph run by onnxruntime-node directly
// with a minimal greedy loop (feeds, run, argmax, KV cache fed back) in this process, same threads, prompt tokens and
// max_tokens. The daemon side is `bin/tabagent serve` driven by the `openai` client over HTTP with streaming, so
// HTTP, SSE and the client's parsing are in its timings. Targets print PASS/MISS; exit code 0 unless the
// measurement itself broke (no Python venv for the export, a short stream, a crash).
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { InferenceSession, Tensor } from "onnxruntime-node";
import { ChatTemplate } from "../src/backends/generation/ChatTemplate.js";
import { OnnxTokenizer } from "../src/backends/onnx/OnnxTokenizer.js";
import { ensureTinyLlmOnnx } from "../test/fixtures/ensurePythonFixtures.js";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { ms, signedMs, table } from "./report.js";
import { summarize, type ConfigSummary } from "./stats.js";
import type { RunSample, StreamSample, Streamer } from "./types.js";

const progress = (message: string) => process.stderr.write(`[bench onnx] ${message}\n`);

const ONNX_HELP = `npm run bench -- onnx [options]

  --model DIR        ONNX decoder folder with a KV cache (default: make_tiny_llm.py exported by export_onnx.py)
  --hidden N         size of the generated default model (default 512)
  --layers N         layers of the generated default model (default 8)
  --threads N        ONNX Runtime intra-op threads, both sides (default 1)
  --max-tokens N     tokens per request (default 128)
  --prompt TEXT      the user message
  --reps N           timed runs per side (default 10)
  --json             print the results as JSON
`;

const ONNX_TARGETS = { decodeRatio: 0.95 } as const;

interface Options {
  model: string | null;
  hidden: number;
  layers: number;
  threads: number;
  maxTokens: number;
  prompt: string;
  reps: number;
  json: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      hidden: { type: "string" },
      layers: { type: "string" },
      threads: { type: "string" },
      "max-tokens": { type: "string" },
      prompt: { type: "string" },
      reps: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    model: values.model ?? null,
    hidden: integer("hidden", values.hidden, 512, 16),
    layers: integer("layers", values.layers, 8),
    threads: integer("threads", values.threads, 1),
    maxTokens: integer("max-tokens", values["max-tokens"], 128),
    prompt: values.prompt ?? DEFAULT_PROMPT,
    reps: integer("reps", values.reps, 10),
    json: values.json ?? false,
  };
}

/**
 * The direct side: one InferenceSession, the optimum layout's inputs filled by hand, greedy argmax, each step's
 * `present.*` fed back as `past_key_values.*`. Deliberately independent of src/backends/onnx except for turning
 * the chat prompt into the same token ids.
 */
class DirectLoop implements Streamer {
  private constructor(
    private readonly ort: typeof import("onnxruntime-node"),
    private readonly session: InferenceSession,
    private readonly promptIds: number[],
    private readonly eos: ReadonlySet<number>,
    /** Renders and tokenizes the prompt, as a caller does for each request (the daemon does it per request too). */
    private readonly encode: () => number[],
  ) {}

  static async open(dir: string, prompt: string, threads: number): Promise<DirectLoop> {
    const ort = await import("onnxruntime-node");
    const session = await ort.InferenceSession.create(join(dir, "model.onnx"), {
      executionProviders: ["cpu"],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
    });
    const tokenizer = await OnnxTokenizer.load(dir);
    const template = (await ChatTemplate.load(dir, tokenizer.config, { modelId: "direct" }))!;
    // Rendered once: the daemon renders per request in the template sandbox, which the daemon side of the bench measures.
    const text = await template.render([{ role: "user", content: prompt }]);
    await template.close();
    const encode = () => tokenizer.encode(text, false);
    return new DirectLoop(ort, session, encode(), tokenizer.eosIds, encode);
  }

  get promptTokens(): number {
    return this.promptIds.length;
  }

  async stream(_prompt: string, maxTokens: number): Promise<StreamSample> {
    const { ort, session } = this;
    const startMs = performance.now();
    const arrivalsMs: number[] = [];
    const past: Record<string, Tensor> = {};
    for (const m of session.inputMetadata) {
      if (m.isTensor && m.name.startsWith("past_key_values."))
        past[m.name] = new ort.Tensor("float32", new Float32Array(0), [1, m.shape[1] as number, 0, m.shape[3] as number]);
    }
    let ids = this.encode();
    let length = 0;
    let completion = 0;
    for (;;) {
      const total = length + ids.length;
      const feeds: Record<string, Tensor> = {
        input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
        attention_mask: new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
        position_ids: new ort.Tensor(
          "int64",
          BigInt64Array.from(ids, (_, i) => BigInt(length + i)),
          [1, ids.length],
        ),
        ...past,
      };
      const out = await session.run(feeds);
      const logits = out["logits"]!;
      const vocab = logits.dims[2]!;
      const data = logits.data as Float32Array;
      const start = data.length - vocab;
      let best = 0;
      for (let i = 1; i < vocab; i++) if (data[start + i]! > data[start + best]!) best = i;
      for (const name of Object.keys(past)) past[name] = out[name.replace("past_key_values.", "present.")]!;
      length = total;
      if (this.eos.has(best)) break;
      arrivalsMs.push(performance.now());
      completion++;
      if (completion >= maxTokens) break;
      ids = [best];
    }
    return { startMs, arrivalsMs, completionTokens: completion, promptTokens: this.promptIds.length, text: "" };
  }
}

interface OnnxReport {
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: { model: string; threads: number; maxTokens: number; promptTokens: number; reps: number };
  direct: ConfigSummary;
  daemon: ConfigSummary;
  decodeRatio: number;
  ttftAddedP50Ms: number;
  targets: { name: string; ok: boolean; detail: string }[];
}

function format(r: OnnxReport): string {
  const row = (name: string, s: ConfigSummary) => [name, s.decodeTokPerSec.toFixed(1), ms(s.ttftMs.p50), ms(s.ttftMs.p99), ms(s.itlMs.p50), ms(s.itlMs.p99)];
  return [
    `ONNX Runtime: daemon (HTTP + SSE + openai client) vs onnxruntime-node with a minimal loop, same graph`,
    `machine: ${r.machine.cpus} x ${r.machine.cpuModel}, node ${r.machine.node}, load ${r.machine.loadAvg1mStart.toFixed(2)} -> ${r.machine.loadAvg1mEnd.toFixed(2)}`,
    `model: ${r.setup.model}; threads ${r.setup.threads}; ${r.setup.promptTokens} prompt tokens; ${r.setup.maxTokens} tokens greedy; ${r.setup.reps} runs per side`,
    "",
    table([["side", "tok/s (median)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99"], row("direct", r.direct), row("daemon", r.daemon)]),
    "",
    `decode ratio daemon/direct: ${r.decodeRatio.toFixed(3)}; TTFT added (p50): ${signedMs(r.ttftAddedP50Ms)}`,
    ...r.targets.map((t) => `${t.ok ? "PASS" : "MISS"} ${t.name}: ${t.detail}`),
  ].join("\n");
}

export async function runOnnxSuite(argv: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench onnx: ${(err as Error).message}\n\n${ONNX_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(ONNX_HELP);
    return 0;
  }
  const loadStart = loadavg()[0] ?? 0;
  let dir = o.model;
  if (dir === null) {
    const heads = Math.max(1, Math.round(o.hidden / 64));
    progress(`exporting the generated llama (hidden ${o.hidden}, ${o.layers} layers) to ONNX (cached after the first run)`);
    dir = (
      await ensureTinyLlmOnnx({
        args: ["--hidden", String(o.hidden), "--layers", String(o.layers), "--heads", String(heads), "--kv-heads", String(Math.max(1, heads / 2))],
      })
    ).dir;
  }
  let daemon: DaemonRunner | null = null;
  try {
    progress(`starting bin/tabagent serve (threads ${o.threads})`);
    daemon = await startDaemon({ modelPath: dir, threads: o.threads, contextSize: 2048, parallel: 1 });
    progress("loading the graph directly with onnxruntime-node");
    const direct = await DirectLoop.open(dir, o.prompt, o.threads);

    const check = (s: StreamSample, side: string) => {
      if (s.completionTokens !== o.maxTokens)
        throw new Error(`${side} produced ${s.completionTokens}/${o.maxTokens} tokens: the model ended its turn; try another --prompt or fewer --max-tokens`);
    };
    progress("warm-up (the daemon loads the model now)");
    for (let i = 0; i < 2; i++) {
      const d = await daemon.stream(o.prompt, o.maxTokens);
      check(d, "the daemon");
      if (d.promptTokens !== direct.promptTokens) throw new Error(`prompt tokens differ: daemon ${d.promptTokens}, direct ${direct.promptTokens}`);
      check(await direct.stream(o.prompt, o.maxTokens), "the direct loop");
    }
    const runs = { direct: [] as RunSample[], daemon: [] as RunSample[] };
    progress(`${o.reps} timed runs per side, alternating`);
    for (let i = 0; i < o.reps; i++) {
      for (const side of i % 2 === 0 ? (["direct", "daemon"] as const) : (["daemon", "direct"] as const)) {
        const s = side === "direct" ? await direct.stream(o.prompt, o.maxTokens) : await daemon.stream(o.prompt, o.maxTokens);
        check(s, side);
        runs[side].push([s]);
      }
    }
    const d = summarize(runs.direct);
    const m = summarize(runs.daemon);
    const decodeRatio = m.decodeTokPerSec / d.decodeTokPerSec;
    const cpuList = cpus();
    const report: OnnxReport = {
      machine: {
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model.trim() ?? "unknown",
        node: process.version,
        loadAvg1mStart: loadStart,
        loadAvg1mEnd: loadavg()[0] ?? 0,
      },
      setup: {
        model: o.model ?? `generated llama, hidden ${o.hidden}, ${o.layers} layers`,
        threads: o.threads,
        maxTokens: o.maxTokens,
        promptTokens: direct.promptTokens,
        reps: o.reps,
      },
      direct: d,
      daemon: m,
      decodeRatio,
      ttftAddedP50Ms: m.ttftMs.p50 - d.ttftMs.p50,
      targets: [{ name: `decode tok/s >= ${ONNX_TARGETS.decodeRatio} x direct`, ok: decodeRatio >= ONNX_TARGETS.decodeRatio, detail: `${decodeRatio.toFixed(3)}` }],
    };
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${format(report)}\n`);
    return 0;
  } finally {
    await daemon?.stop();
  }
}
