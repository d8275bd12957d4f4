// `npm run bench -- engines`: the conformance model (one seeded llama, make_tiny_llm.py) written three ways and
// served side by side by one daemon: safetensors on the transformers engine, GGUF F32 on node-llama-cpp, ONNX on
// onnxruntime-node. Same prompt, greedy, same max_tokens and threads; runs rotate through the engines. It compares
// engines, not the daemon's overhead (the per-engine suites do that): decode tok/s, TTFT and inter-token latency,
// and how far their greedy answers agree (the conformance test checks exact agreement on the tiny model).
import { parseArgs } from "node:util";
import { ensureTinyLlm, ensureTinyLlmGguf, ensureTinyLlmOnnx } from "../test/fixtures/ensurePythonFixtures.js";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { ms, table } from "./report.js";
import { summarize } from "./stats.js";
import type { RunSample } from "./types.js";

const progress = (message: string) => process.stderr.write(`[bench engines] ${message}\n`);

const ENGINES_HELP = `npm run bench -- engines [options]

  --hidden N       hidden size of the generated model (default 512)
  --layers N       layers of the generated model (default 8)
  --threads N      CPU threads, every engine (default 1)
  --max-tokens N   tokens per request (default 128)
  --reps N         timed runs per engine (default 8)
  --json           print the results as JSON
`;

const ENGINES = [
  ["transformers", "eng-transformers"],
  ["node-llama-cpp", "eng-llamacpp"],
  ["onnxruntime", "eng-onnx"],
] as const;

export async function runEnginesSuite(argv: string[]): Promise<number> {
  let o: { hidden: number; layers: number; threads: number; maxTokens: number; reps: number; json: boolean };
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        hidden: { type: "string" },
        layers: { type: "string" },
        threads: { type: "string" },
        "max-tokens": { type: "string" },
        reps: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      process.stdout.write(ENGINES_HELP);
      return 0;
    }
    o = {
      hidden: integer("hidden", values.hidden, 512),
      layers: integer("layers", values.layers, 8),
      threads: integer("threads", values.threads, 1),
      maxTokens: integer("max-tokens", values["max-tokens"], 128),
      reps: integer("reps", values.reps, 8),
      json: values.json === true,
    };
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${ENGINES_HELP}`);
    return 2;
  }
  const size = ["--hidden", String(o.hidden), "--layers", String(o.layers), "--heads", "8", "--kv-heads", "4"];
  progress(`model: make_tiny_llm.py ${size.join(" ")} as safetensors, GGUF F32 and ONNX (cached after the first run)`);
  const [st, gguf, onnx] = await Promise.all([ensureTinyLlm(size), ensureTinyLlmGguf(size), ensureTinyLlmOnnx({ args: size })]);
  const prompt = DEFAULT_PROMPT;
  let daemon: DaemonRunner | null = null;
  try {
    daemon = await startDaemon({
      serveArgs: [
        "--model",
        `eng-transformers=${st}`,
        "--model",
        `eng-llamacpp=${gguf}`,
        "--model",
        `eng-onnx=${onnx.dir}`,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--gpu",
        "off",
        "--threads",
        String(o.threads),
        "--parallel",
        "1",
        "--context-size",
        "2048",
        "--idle-ttl",
        "0",
        "--log-level",
        "info",
      ],
      modelId: "eng-transformers",
    });
    const runner = daemon;
    const streamers = ENGINES.map(([, id]) => runner.streamerFor(id));
    for (const [i, s] of streamers.entries()) {
      const started = performance.now();
      await s.stream(prompt, 2);
      progress(`${ENGINES[i]![0]}: first request (load) ${(performance.now() - started).toFixed(0)} ms`);
      await s.stream(prompt, o.maxTokens); // warm-up
    }
    const runs: RunSample[][] = ENGINES.map(() => []);
    for (let r = 0; r < o.reps; r++) {
      for (let k = 0; k < ENGINES.length; k++) {
        const e = (r + k) % ENGINES.length; // rotate who goes first
        const sample = await streamers[e]!.stream(prompt, o.maxTokens);
        if (sample.completionTokens !== o.maxTokens) throw new Error(`${ENGINES[e]![0]} produced ${sample.completionTokens} of ${o.maxTokens} tokens`);
        runs[e]!.push([sample]);
      }
    }
    const results = ENGINES.map(([engine], i) => ({ engine, summary: summarize(runs[i]!), text: runs[i]![0]![0]!.text }));
    // Greedy answers of one model on three engines agree for as long as no two candidate tokens are within the
    // engines' float differences of each other; over 128 tokens of a random model that is not guaranteed.
    const common = (a: string, b: string) => {
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      return i;
    };
    const agreement = results.map((r) => ({ engine: r.engine, sameAsFirstChars: common(r.text, results[0]!.text), chars: r.text.length }));
    const sameText = results.every((r) => r.text === results[0]!.text);
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({ setup: { ...o, model: st }, results: results.map(({ engine, summary }) => ({ engine, summary })), sameText, agreement }, null, 2)}\n`,
      );
    } else {
      process.stdout.write(
        [
          `engines: make_tiny_llm.py ${size.join(" ")}; threads ${o.threads}, ${o.maxTokens} tokens per run, ${o.reps} runs per engine, greedy`,
          "",
          table([
            ["engine", "decode tok/s (median)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99"],
            ...results.map(({ engine, summary: s }) => [engine, s.decodeTokPerSec.toFixed(1), ms(s.ttftMs.p50), ms(s.ttftMs.p99), ms(s.itlMs.p50), ms(s.itlMs.p99)]),
          ]),
          "",
          `  same text from all three: ${sameText ? "yes" : "no"}; ${agreement
            .slice(1)
            .map((a) => `${a.engine} matches ${results[0]!.engine} for ${a.sameAsFirstChars} of ${a.chars} characters`)
            .join("; ")}`,
          "",
        ].join("\n"),
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`bench engines: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await daemon?.stop();
  }
}
