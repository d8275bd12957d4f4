import { parseArgs } from "node:util";

export interface BenchOptions {
  /** GGUF chat model; null = the generated tiny fixture. */
  modelPath: string | null;
  threads: number;
  contextSize: number;
  maxTokens: number;
  prompt: string;
  /** Timed repetitions per mode at concurrency 1 and at `concurrency`. */
  repsSingle: number;
  repsConcurrent: number;
  concurrency: number;
  json: boolean;
}

export const BENCH_HELP = `npm run bench -- [options]

  --model PATH          GGUF chat model (default: the generated tiny test model)
  --threads N           llama.cpp threads, same for both modes (default 1)
  --context-size N      context tokens per sequence (default 2048)
  --max-tokens N        tokens generated per request (default 256)
  --prompt TEXT         the user message (default: a fixed sentence)
  --concurrency N       simultaneous streams for the concurrent case (default 4)
  --reps N              timed runs at concurrency 1 per mode (default 10)
  --reps-concurrent N   timed runs at the concurrent case per mode (default 5)
  --json                print the results as JSON instead of the table
`;

const DEFAULT_PROMPT = "Tell me a story about a lighthouse keeper and a cat.";

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${value}'`);
  return n;
}

/** Returns null when --help was asked for. */
export function parseBenchArgs(argv: string[]): BenchOptions | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      threads: { type: "string" },
      "context-size": { type: "string" },
      "max-tokens": { type: "string" },
      prompt: { type: "string" },
      concurrency: { type: "string" },
      reps: { type: "string" },
      "reps-concurrent": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    modelPath: values.model ?? null,
    threads: positiveInt("threads", values.threads, 1),
    contextSize: positiveInt("context-size", values["context-size"], 2048),
    maxTokens: positiveInt("max-tokens", values["max-tokens"], 256),
    prompt: values.prompt ?? DEFAULT_PROMPT,
    concurrency: positiveInt("concurrency", values.concurrency, 4),
    repsSingle: positiveInt("reps", values.reps, 10),
    repsConcurrent: positiveInt("reps-concurrent", values["reps-concurrent"], 5),
    json: values.json === true,
  };
}
