// The deployment: `bin/tabagent serve` in a child process, driven over HTTP by the real `openai` client with
// stream: true. Everything the daemon adds on top of the engine (HTTP, zod, routing, SSE, JSON) is in these timings,
// and so is the client's own SSE parsing, which shares the machine's cores with the daemon.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import type { StreamOptions, StreamSample, Streamer } from "./types.js";

const TABAGENT_BIN = fileURLToPath(new URL("../bin/tabagent", import.meta.url));
const MODEL_ID = "bench";
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

interface DaemonOptions {
  modelPath: string;
  threads: number;
  contextSize: number;
  parallel: number;
  /** Extra node flags for the daemon, e.g. --cpu-prof (NODE_OPTIONS does not allow it). */
  nodeArgs?: string[];
}

/** `tabagent serve` with these arguments instead (e.g. `--config FILE`); requests go to `modelId`. */
interface DaemonArgsOptions {
  serveArgs: string[];
  modelId: string;
  nodeArgs?: string[];
  /** Settings the daemon gets from its environment (the caller's own TABAGENT_* are never passed on). */
  env?: Record<string, string>;
}

export interface DaemonRunner extends Streamer {
  pid: number;
  url: string;
  /** VmRSS right after the "listening" line: nothing loaded yet. */
  idleRssBytes: number | null;
  rssBytes(): number | null;
  /** Round trip of GET /v1/models through the same client: the HTTP + SDK floor under every TTFT. */
  roundTripMs(): Promise<number>;
  /** The same daemon, another of its models. */
  streamerFor(modelId: string): Streamer;
  /** SIGTERM (graceful drain), SIGKILL if it hangs; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Resident set size of a process from /proc (Linux); null where that is not available. */
export function readRssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export async function startDaemon(options: DaemonOptions | DaemonArgsOptions): Promise<DaemonRunner> {
  // TABAGENT_* settings of the caller's shell would change what is measured: only the flags below count.
  // A data folder of its own: a daemon the user runs holds the default one (daemon.lock), and must not see this one.
  const dataDir = mkdtempSync(join(tmpdir(), "tabagent-bench-data-"));
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TABAGENT_"))),
    TABAGENT_DATA_DIR: dataDir,
    ...("env" in options ? options.env : {}),
  };
  const modelId = "serveArgs" in options ? options.modelId : MODEL_ID;
  const serveArgs =
    "serveArgs" in options
      ? options.serveArgs
      : [
          "--model",
          `${MODEL_ID}=${options.modelPath}`,
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--gpu",
          "off",
          "--threads",
          String(options.threads),
          "--context-size",
          String(options.contextSize),
          "--parallel",
          String(options.parallel),
          "--idle-ttl",
          "0",
          "--log-level",
          "info",
        ];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), TABAGENT_BIN, "serve", ...serveArgs], { env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const logs: string[] = [];
  const keep = (line: string) => {
    logs.push(line);
    if (logs.length > 40) logs.shift();
  };
  let url: string;
  try {
    url = await waitForListening(child, exited, keep);
  } catch (err) {
    await terminate(child, exited);
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- daemon output ---\n${logs.join("\n")}`, { cause: err });
  }
  // Read before anything else talks to it: this is the footprint of a daemon that has loaded nothing.
  const idleRssBytes = readRssBytes(child.pid!);
  const client = openaiClient(`${url}/v1`);
  return {
    pid: child.pid!,
    url,
    idleRssBytes,
    rssBytes: () => readRssBytes(child.pid!),
    stream: (prompt, maxTokens, streamOptions) => streamChat(client, modelId, prompt, maxTokens, streamOptions),
    streamerFor: (id) => ({ stream: (prompt, maxTokens, streamOptions) => streamChat(client, id, prompt, maxTokens, streamOptions) }),
    async roundTripMs() {
      const start = performance.now();
      await client.models.list();
      return performance.now() - start;
    },
    stop: () => terminate(child, exited).finally(() => rmSync(dataDir, { recursive: true, force: true })),
  };
}

/** The client every OpenAI-compatible side of a comparison is driven with. */
export function openaiClient(baseURL: string): OpenAI {
  return new OpenAI({ baseURL, apiKey: "bench", maxRetries: 0, timeout: 120_000 });
}

function waitForListening(child: ChildProcess, exited: Promise<number | null>, keep: (line: string) => void): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tabagent serve did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    // Both pipes are drained for the child's whole life: a full pipe would stall its logger and skew the timings.
    let buffered = "";
    child.stdout!.setEncoding("utf8").on("data", (data: string) => {
      buffered += data;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        keep(line);
        const m = /tabagent listening on (http:\/\/[^\s"]+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (data: string) => keep(data.trimEnd()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tabagent serve exited with code ${code} before listening`));
    });
  });
}

async function terminate(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), STOP_TIMEOUT_MS)));
  const result = await Promise.race([exited, hung]);
  clearTimeout(timer);
  if (result !== "hung") return result;
  child.kill("SIGKILL");
  return exited;
}

/** One streamed chat completion through the `openai` client, timestamped per content chunk. */
export async function streamChat(client: OpenAI, model: string, prompt: string, maxTokens: number, options: StreamOptions = {}): Promise<StreamSample> {
  const startMs = options.startMs ?? performance.now();
  const arrivalsMs: number[] = [];
  let text = "";
  let usage: OpenAI.CompletionUsage | null = null;
  let engineTokPerSec: number | undefined;
  try {
    const response = await client.chat.completions.create(
      {
        model,
        messages: [{ role: "user", content: prompt }],
        max_tokens: maxTokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      },
      { signal: options.signal },
    );
    for await (const chunk of response) {
      const content = chunk.choices[0]?.delta.content;
      // The opening chunk carries the role and empty content: only text counts as a token arriving.
      if (content) {
        arrivalsMs.push(performance.now());
        if (arrivalsMs.length === 1) options.onFirstToken?.();
        text += content;
      }
      if (chunk.usage) usage = chunk.usage;
      // llama-server adds its own timings to the last chunk: the engine's decode rate, without any HTTP in it.
      const timings = (chunk as { timings?: { predicted_per_second?: unknown } }).timings;
      if (typeof timings?.predicted_per_second === "number") engineTokPerSec = timings.predicted_per_second;
    }
  } catch (err) {
    if (!options.signal?.aborted) throw err;
  }
  if (options.signal?.aborted) {
    // No usage chunk on an aborted stream: one content chunk per token is close enough for a sample nobody checks.
    return { startMs, arrivalsMs, completionTokens: arrivalsMs.length, promptTokens: Number.NaN, text, aborted: true };
  }
  if (!usage) throw new Error("the stream ended without a usage chunk (stream_options.include_usage)");
  const engine = engineTokPerSec === undefined ? {} : { engineTokPerSec };
  return { startMs, arrivalsMs, completionTokens: usage.completion_tokens, promptTokens: usage.prompt_tokens, text, ...engine };
}
