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
  /** Write a V8 CPU profile of the daemon into this folder (node --cpu-prof). */
  profileDaemonDir: string | null;
  /** Late-arrival trials per mode; 0 skips that scenario. */
  lateTrials: number;
  json: boolean;
}

export const BENCH_HELP = `npm run bench [-- SUITE] [options]

Suites: (none) node-llama-cpp directly vs through the daemon (the options below); detect; llama-server; vs-llama-server;
transformers; onnx; engines; load; structured; sampling;
litert (LiteRT-LM's Python API directly vs the daemon's LiteRT engine on the converted tiny llama; see \`-- litert --help\`);
bitnet (BitNet's llama-server directly vs through the daemon on an I2_S model; see \`-- bitnet --help\`);
rerank (rerank documents/s: the daemon vs CrossEncoder.predict and vs llama-server's /v1/rerank; see \`-- rerank --help\`);
web (the page at / in headless Chromium: time to interactive cold and warm, bytes; see \`-- web --help\`);
native-host (TTFT and tok/s through the browser bridge vs the HTTP API; see \`-- native-host --help\`);
all (every suite, default options; only --json is accepted).

npm run bench -- [options]

  --model PATH          GGUF chat model (default: the generated tiny test model)
  --threads N           llama.cpp threads, same for both modes (default 1)
  --context-size N      context tokens per sequence (default 2048)
  --max-tokens N        tokens generated per request (default 256)
  --prompt TEXT         the user message (default: a fixed sentence)
  --concurrency N       simultaneous streams for the concurrent case (default 4)
  --reps N              timed runs at concurrency 1 per mode (default 20)
  --reps-concurrent N   timed runs at the concurrent case per mode (default 10)
  --late-trials N       late-arrival trials per mode, 0 to skip (default 3); each lasts as long as a new
                        request waits, which is a whole background generation while that wait exists
  --profile-daemon DIR  run the daemon under node --cpu-prof and write its profile into DIR (on exit)
  --json                print the results as JSON instead of the table
`;

/** The user message every generation suite sends unless --prompt names another. */
export const DEFAULT_PROMPT = "Tell me a story about a lighthouse keeper and a cat.";

export function integer(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${value}'`);
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
      "late-trials": { type: "string" },
      "profile-daemon": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    modelPath: values.model ?? null,
    threads: integer("threads", values.threads, 1),
    contextSize: integer("context-size", values["context-size"], 2048),
    maxTokens: integer("max-tokens", values["max-tokens"], 256),
    prompt: values.prompt ?? DEFAULT_PROMPT,
    concurrency: integer("concurrency", values.concurrency, 4),
    repsSingle: integer("reps", values.reps, 20),
    repsConcurrent: integer("reps-concurrent", values["reps-concurrent"], 10),
    lateTrials: integer("late-trials", values["late-trials"], 3, 0),
    profileDaemonDir: values["profile-daemon"] ?? null,
    json: values.json === true,
  };
}
