/**
 * What the request metrics cost: requests per second of a trivial route with and without `registerRequestMetrics`
 * (server in a child process, this process as the client, keep-alive, fixed concurrency), median of several
 * alternating runs; then the per-call cost of the token hot path. Not a test (vitest does not pick it up):
 *
 *   npx tsx test/server/metrics/measureOverhead.ts [--runs 7] [--requests 20000] [--concurrency 16]
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import Fastify from "fastify";
import { DaemonMetrics } from "../../../src/server/metrics/DaemonMetrics.js";
import { registerRequestMetrics } from "../../../src/server/metrics/registerMetricsRoute.js";

/** `daemon*`: with hooks like the daemon's own (a request-id header, a per-request close listener, a log hook). */
type Mode = "bare" | "metrics" | "daemon" | "daemon+metrics";
const MODES: Mode[] = ["bare", "metrics", "daemon", "daemon+metrics"];

async function serve(mode: Mode): Promise<void> {
  const app = Fastify();
  if (mode.startsWith("daemon")) {
    let inflight = 0;
    app.addHook("onRequest", async (request, reply) => {
      reply.header("x-request-id", request.id);
      inflight++;
      reply.raw.once("close", () => inflight--);
    });
    app.addHook("onResponse", async (request, reply) => {
      if (reply.statusCode < 0) console.log(request.url, inflight); // stands in for the log line
    });
  }
  if (mode.endsWith("metrics")) registerRequestMetrics(app, new DaemonMetrics());
  app.get("/trivial", async () => ({ ok: true }));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  // The parent asks for the server's CPU time around each run: CPU per request hardly moves when other
  // processes compete for the cores, unlike requests per second.
  process.on("message", () => process.send!({ cpu: process.cpuUsage() }));
  process.send!({ port: typeof address === "object" && address ? address.port : 0 });
}

interface Server {
  child: ChildProcess;
  port: number;
}

async function startServer(mode: Mode): Promise<Server> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", mode], { stdio: "inherit" });
  const [message] = (await once(child, "message")) as [{ port: number }];
  return { child, port: message.port };
}

/** The server's CPU time (user + system), in microseconds. */
async function serverCpu(server: Server): Promise<number> {
  const reply = once(server.child, "message") as Promise<[{ cpu: NodeJS.CpuUsage }]>;
  server.child.send("cpu");
  const [{ cpu }] = await reply;
  return cpu.user + cpu.system;
}

async function measure(server: Server, requests: number, concurrency: number): Promise<{ rps: number; cpuUs: number }> {
  const before = await serverCpu(server);
  const rps = await load(server.port, requests, concurrency);
  return { rps, cpuUs: (await serverCpu(server)) - before };
}

async function load(port: number, requests: number, concurrency: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/trivial", agent }, (res) => {
        res.resume();
        res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.once("error", reject);
      req.end();
    });
  let sent = 0;
  const worker = async () => {
    while (sent < requests) {
      sent++;
      await one();
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return requests / seconds;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function perCall(label: string, n: number, f: (i: number) => void): void {
  for (let i = 0; i < n / 10; i++) f(i); // warm up
  const started = performance.now();
  for (let i = 0; i < n; i++) f(i);
  console.log(`${label.padEnd(44)} ${(((performance.now() - started) * 1e6) / n).toFixed(0).padStart(5)} ns/call`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      serve: { type: "string" },
      runs: { type: "string", default: "7" },
      requests: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "16" },
    },
  });
  if (values.serve) return serve(values.serve as Mode);
  const runs = Number(values.runs);
  const requests = Number(values.requests);
  const concurrency = Number(values.concurrency);
  const servers = Object.fromEntries(await Promise.all(MODES.map(async (m) => [m, await startServer(m)] as const))) as Record<Mode, Server>;
  const rps = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
  const cpu = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
  try {
    for (const mode of MODES) await load(servers[mode].port, Math.min(5000, requests), concurrency); // warm up
    for (let run = 0; run < runs; run++) {
      // Alternate the order so drift (thermal, other load) hits both alike.
      const order = run % 2 ? [...MODES].reverse() : MODES;
      for (const mode of order) {
        const m = await measure(servers[mode], requests, concurrency);
        rps[mode].push(m.rps);
        cpu[mode].push(m.cpuUs / requests);
      }
    }
  } finally {
    for (const { child } of Object.values(servers)) child.kill();
  }
  console.log(`${runs} runs × ${requests} requests, concurrency ${concurrency}, keep-alive, server in a child process`);
  for (const mode of MODES) {
    console.log(
      `${mode.padEnd(15)} median ${median(rps[mode]).toFixed(0).padStart(6)} req/s, ${median(cpu[mode]).toFixed(1)} µs server CPU/request` +
        `   req/s runs: ${rps[mode].map((x) => x.toFixed(0)).join(" ")}`,
    );
  }
  for (const [base, withMetrics] of [
    ["bare", "metrics"],
    ["daemon", "daemon+metrics"],
  ] as const) {
    const cpuCost = median(cpu[withMetrics]) - median(cpu[base]);
    const slower = (median(rps[base]) - median(rps[withMetrics])) / median(rps[base]);
    console.log(
      `metrics over ${base.padEnd(6)}: ${(slower * 100).toFixed(1)}% fewer req/s (median); ` +
        `+${cpuCost.toFixed(1)} µs server CPU per request (+${((cpuCost / median(cpu[base])) * 100).toFixed(1)}%)`,
    );
  }
  const metrics = new DaemonMetrics({ processMetrics: false });
  const observer = metrics.startGeneration("tiny-chat");
  const chunk = { type: "text", index: 0, text: "x" } as const;
  perCall("observeRequest (per request)", 1e6, (i) => metrics.observeRequest("/v1/chat/completions", "tiny-chat", 200, (i % 100) / 1000));
  perCall("startGeneration().chunk(text) (per token)", 1e6, () => observer.chunk(chunk));
  perCall("observeInterToken (per token, by id)", 1e6, (i) => metrics.observeInterToken("tiny-chat", (i % 100) / 1e5));
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) await metrics.scrape();
  console.log(`${"scrape (no process metrics)".padEnd(44)} ${((performance.now() - t0) / 20).toFixed(2).padStart(5)} ms`);
}

await main();
