// `npm run bench -- native-host`: what the browser bridge adds. One `bin/tabagent serve` process serves the
// generated tiny GGUF (node-llama-cpp); the same greedy chat is streamed (a) straight from the HTTP API with fetch,
// as an extension with host permissions would, and (b) through `tabagent native-host` spawned as a browser spawns it
// (the launcher `native-host install` wrote, the caller's origin as argument, frames on stdin/stdout). Each round
// runs both, plus a second direct stream as the A/A control, in a rotating order. Reported: time to first token
// (request written -> first text received), the decode rate of the streamed tokens, medians over rounds, the bridge's
// added p50 and throughput ratio, and the same figures between the two direct streams (the noise band).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { encodeFrame } from "../src/nativeHost/encodeFrames.js";
import { FrameReader } from "../src/nativeHost/FrameReader.js";
import { addCpu, withCpuTime, ZERO_CPU } from "./cpuTime.js";
import { installNativeHost } from "../src/nativeHost/installNativeHost.js";
import { startDaemon } from "./measureDaemon.js";
import { DEFAULT_PROMPT, integer } from "./options.js";
import { table } from "./report.js";
import { median, percentile } from "./stats.js";

const TARGET = { maxAddedTtftMs: 2, minThroughputRatio: 0.98 } as const;
const EXTENSION = "knldjmfmopnpolahpmmgbagdohdnhkik";
const MODEL_ID = "bench";
const progress = (message: string) => process.stderr.write(`[bench native-host] ${message}\n`);

export const NATIVE_HOST_HELP = `npm run bench -- native-host [options]

The same greedy chat streamed from the daemon's HTTP API directly and through the native-messaging host.

  --rounds N        rounds; each streams direct, direct again (A/A) and through the host, order rotating (default 30)
  --max-tokens N    tokens per answer (default 128)
  --prompt TEXT     the user message (default: the bench's fixed sentence)
  --model PATH      a GGUF chat model (default: the generated tiny model, whose ~2,000 tok/s make the host's
                    per-token work show far more than a real model's would)
  --threads N       the daemon's threads (default 1)
  --json            print the results as JSON
`;

interface Sample {
  ttftMs: number;
  tokens: number;
  /** Pieces after the first over the time since it. */
  decodeTokPerSec: number;
  text: string;
}

interface HostBridge {
  /** The host's pid (the launcher execs node). */
  pid: number;
  stream(prompt: string, maxTokens: number): Promise<Sample>;
  close(): Promise<void>;
}

/** Spawns the installed launcher as Chrome does and streams chats through it, one at a time. */
async function openBridge(launcher: string, daemonUrl: string): Promise<HostBridge> {
  const child = spawn(launcher, [`chrome-extension://${EXTENSION}/`], {
    env: { ...process.env, TABAGENT_URL: daemonUrl, TABAGENT_LOG_LEVEL: "warn" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const reader = new FrameReader({ maxBytes: 64 * 1024 * 1024 });
  let onMessage: (m: Record<string, unknown>, at: number) => void = () => undefined;
  child.stdout.on("data", (chunk: Buffer) => {
    const at = performance.now();
    for (const e of reader.push(chunk)) if (e.kind === "frame") onMessage(JSON.parse(e.body.toString()) as Record<string, unknown>, at);
  });
  let next = 0;
  const stream = (prompt: string, maxTokens: number) =>
    new Promise<Sample>((resolvePromise, reject) => {
      const id = ++next;
      let first: number | null = null;
      let last = 0;
      let pieces = 0;
      let text = "";
      onMessage = (m, at) => {
        if (m.id !== id) return;
        if (m.event === "token") {
          first ??= at;
          last = at;
          pieces++;
          text += m.text as string;
        } else if (m.ok === true) {
          resolvePromise({ ttftMs: first! - started, tokens: pieces, decodeTokPerSec: pieces > 1 ? ((pieces - 1) * 1000) / (last - first!) : 0, text });
        } else if (m.ok === false) reject(new Error(JSON.stringify(m.error)));
      };
      const frame = encodeFrame(
        JSON.stringify({ id, action: "chat", model: MODEL_ID, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0 }),
      );
      const started = performance.now();
      child.stdin.write(frame);
    });
  // The first request starts the host's connection to the daemon: not measured.
  await stream("warm up", 2);
  return {
    pid: child.pid!,
    stream,
    close: () =>
      new Promise<void>((r) => {
        child.once("exit", () => r());
        child.stdin.end();
      }),
  };
}

/** The HTTP API straight, with fetch and a minimal SSE reader: what the host itself does per request. */
async function streamDirect(url: string, prompt: string, maxTokens: number): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL_ID, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = "";
  let first: number | null = null;
  let last = 0;
  let pieces = 0;
  let text = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const at = performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const content = (JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content;
      if (content) {
        first ??= at;
        last = at;
        pieces++;
        text += content;
      }
    }
  }
  return { ttftMs: first! - started, tokens: pieces, decodeTokPerSec: pieces > 1 ? ((pieces - 1) * 1000) / (last - first!) : 0, text };
}

export async function runNativeHostSuite(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      rounds: { type: "string" },
      "max-tokens": { type: "string" },
      prompt: { type: "string" },
      threads: { type: "string" },
      model: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(NATIVE_HOST_HELP);
    return 0;
  }
  const rounds = integer("rounds", values.rounds, 30);
  const maxTokens = integer("max-tokens", values["max-tokens"], 128);
  const threads = integer("threads", values.threads, 1);
  const prompt = values.prompt ?? DEFAULT_PROMPT;
  const fixtures = await ensureFixtures();
  const daemon = await startDaemon({
    serveArgs: [
      "--model",
      `${MODEL_ID}=${resolve(values.model ?? fixtures.chatModelPath)}`,
      "--gguf-engine",
      "node-llama-cpp",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--gpu",
      "off",
      "--threads",
      String(threads),
      "--context-size",
      "2048",
      "--idle-ttl",
      "0",
      "--discover",
      "none",
      // startDaemon waits for the info-level "listening" line.
      "--log-level",
      "info",
    ],
    modelId: MODEL_ID,
  });
  // After the daemon is up: a daemon that fails to start leaves nothing behind.
  const home = mkdtempSync(join(tmpdir(), "tabagent-bench-nh-"));
  let bridge: HostBridge | null = null;
  try {
    const bin = fileURLToPath(new URL("../bin/tabagent", import.meta.url));
    const installed = await installNativeHost(
      { platform: "linux", scope: "user", home, dataDir: join(home, "data"), env: {}, dir: join(home, "NativeMessagingHosts") },
      ["chromium"],
      [EXTENSION],
      [process.execPath, bin],
    );
    const startedAt = performance.now();
    bridge = await openBridge(installed.launcher, daemon.url);
    const coldStartMs = performance.now() - startedAt;
    progress(`host up and warm in ${coldStartMs.toFixed(0)} ms; ${rounds} rounds of ${maxTokens} tokens`);
    await streamDirect(daemon.url, "warm up", 2);
    const samples = { direct: [] as Sample[], control: [] as Sample[], bridge: [] as Sample[] };
    const order: (keyof typeof samples)[] = ["direct", "control", "bridge"];
    let hostCpu = ZERO_CPU;
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < order.length; i++) {
        const mode = order[(r + i) % order.length]!;
        if (mode === "bridge") {
          const open = bridge;
          const { result, cpu } = await withCpuTime([open.pid], () => open.stream(prompt, maxTokens));
          samples.bridge.push(result);
          hostCpu = addCpu(hostCpu, cpu[0]!);
        } else samples[mode].push(await streamDirect(daemon.url, prompt, maxTokens));
      }
      if ((r + 1) % 10 === 0) progress(`round ${r + 1}/${rounds}`);
    }
    const same = samples.bridge.every((s, i) => s.text === samples.direct[i]!.text);
    const stat = (list: Sample[]) => ({
      ttftP50: median(list.map((s) => s.ttftMs)),
      ttftP90: percentile(
        list.map((s) => s.ttftMs),
        90,
      ),
      tokPerSec: median(list.map((s) => s.decodeTokPerSec)),
      tokens: median(list.map((s) => s.tokens)),
    });
    const direct = stat(samples.direct);
    const control = stat(samples.control);
    const viaHost = stat(samples.bridge);
    // Paired per round: the same moment's noise cancels out of each difference.
    const addedP50 = median(samples.bridge.map((s, i) => s.ttftMs - samples.direct[i]!.ttftMs));
    const aaP50 = median(samples.control.map((s, i) => s.ttftMs - samples.direct[i]!.ttftMs));
    const bridgeTokens = samples.bridge.reduce((n, x) => n + x.tokens, 0);
    const perToken = (ns: number) => ns / 1000 / Math.max(1, bridgeTokens);
    const hostCpuUsPerToken = perToken(hostCpu.mainNs + hostCpu.otherNs);
    const ratio = median(samples.bridge.map((s, i) => s.decodeTokPerSec / samples.direct[i]!.decodeTokPerSec));
    const aaRatio = median(samples.control.map((s, i) => s.decodeTokPerSec / samples.direct[i]!.decodeTokPerSec));
    const targets = [
      { name: `TTFT added by the host p50 <= ${TARGET.maxAddedTtftMs} ms`, value: addedP50, pass: addedP50 <= TARGET.maxAddedTtftMs },
      { name: `streamed tok/s through the host >= ${TARGET.minThroughputRatio}x direct`, value: ratio, pass: ratio >= TARGET.minThroughputRatio },
    ];
    const report = {
      machine: { cpus: cpus().length, loadavg: loadavg() },
      rounds,
      maxTokens,
      coldStartMs,
      sameText: same,
      direct,
      control,
      bridge: viaHost,
      addedTtftP50Ms: addedP50,
      aaTtftP50Ms: aaP50,
      throughputRatio: ratio,
      aaThroughputRatio: aaRatio,
      hostCpuUsPerToken,
      targets,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      const f = (v: number) => v.toFixed(2);
      process.stdout.write(
        `${table([
          ["", "TTFT p50 ms", "TTFT p90 ms", "tok/s p50", "tokens"],
          ["HTTP API direct", f(direct.ttftP50), f(direct.ttftP90), f(direct.tokPerSec), String(direct.tokens)],
          ["HTTP API direct (A/A)", f(control.ttftP50), f(control.ttftP90), f(control.tokPerSec), String(control.tokens)],
          ["through native-host", f(viaHost.ttftP50), f(viaHost.ttftP90), f(viaHost.tokPerSec), String(viaHost.tokens)],
        ])}\n\n` +
          `added TTFT p50 (paired): ${f(addedP50)} ms   A/A: ${f(aaP50)} ms\n` +
          `throughput ratio p50 (paired): ${ratio.toFixed(3)}x   A/A: ${aaRatio.toFixed(3)}x\n` +
          `host CPU per streamed token: ${hostCpuUsPerToken.toFixed(1)} µs (main thread ${perToken(hostCpu.mainNs).toFixed(1)}, other threads ${perToken(hostCpu.otherNs).toFixed(1)}; waiting for a CPU ${perToken(hostCpu.waitNs).toFixed(1)}); on 2 shared cores it is taken from the daemon\n` +
          `host start to first answer: ${coldStartMs.toFixed(0)} ms; same text through both: ${same ? "yes" : "NO"}; load average ${loadavg()
            .map((l) => l.toFixed(2))
            .join(" ")} on ${cpus().length} CPUs\n` +
          targets.map((t) => `${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.value.toFixed(3)}`).join("\n") +
          "\n",
      );
    }
    return same ? 0 : 1;
  } finally {
    await bridge?.close();
    await daemon.stop();
    rmSync(home, { recursive: true, force: true });
  }
}
