// `npm run bench -- load`: what API keys plus Prometheus metrics cost under load. Two `bin/tabagent serve` processes
// of the same build serve the generated tiny GGUF: "on" with an API key and metrics (the default), "off" without a
// key and with `--metrics off`. This process drives them over loopback with a bounded number of requests at
// concurrency 1, 8 and 32 (keep-alive connections, one per concurrent client), for `GET /v1/models` and for short
// chat completions (max_tokens 4), in rounds that alternate which daemon goes first. Both are sent the same headers
// (the Authorization header included), so the client's work is the same and the difference is the daemon's.
// The rounds run in two halves with fresh daemons, started on-then-off in the first and off-then-on in the second:
// on this machine the daemon started first measured a few percent slower even when both had the same settings.
import { Agent, request as httpRequest } from "node:http";
import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { readCpuTime } from "./cpuTime.js";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { integer } from "./options.js";
import { table } from "./report.js";
import { median, percentile } from "./stats.js";

const FIXTURES_DIR = fileURLToPath(new URL("../.fixtures/models", import.meta.url));
const MODEL_ID = "bench";
/** Any valid key: only the "on" daemon checks it. */
const API_KEY = "sk-bench-load-0123456789abcdef";
const progress = (message: string) => process.stderr.write(`[bench load] ${message}\n`);

const LOAD_TARGET = { maxCostFraction: 0.03 } as const;

const LOAD_HELP = `npm run bench -- load [options]

Two daemons of the same build: "on" (an API key and metrics, the defaults) and "off" (no key, --metrics off),
driven alternately over loopback with a bounded number of requests.

  --concurrency LIST      concurrent clients, comma separated (default 1,8,32)
  --rounds N              rounds per case; each runs both daemons, alternating which goes first; split in two
                          halves with fresh daemons started in opposite orders (default 20)
  --models-requests N     GET /v1/models requests per daemon per round (default 2000)
  --chat-requests N       chat completions per daemon per round (default 128)
  --max-tokens N          max_tokens of each completion (default 4)
  --parallel N            the daemons' --parallel (default 8)
  --log-level LEVEL       the daemons' --log-level (default info, the daemon's default: one line per request)
  --profile DIR           run both daemons under node --cpu-prof, profiles written into DIR on exit
  --json                  print the results as JSON
`;

interface LoadOptions {
  concurrency: number[];
  rounds: number;
  modelsRequests: number;
  chatRequests: number;
  maxTokens: number;
  parallel: number;
  logLevel: string;
  profileDir: string | null;
  json: boolean;
}

function parseOptions(argv: string[]): LoadOptions | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      concurrency: { type: "string" },
      rounds: { type: "string" },
      "models-requests": { type: "string" },
      "chat-requests": { type: "string" },
      "max-tokens": { type: "string" },
      parallel: { type: "string" },
      "log-level": { type: "string" },
      profile: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  const concurrency = (values.concurrency ?? "1,8,32").split(",").map((c) => integer("concurrency", c.trim(), 1));
  return {
    concurrency,
    rounds: integer("rounds", values.rounds, 20, 2),
    modelsRequests: integer("models-requests", values["models-requests"], 2000),
    chatRequests: integer("chat-requests", values["chat-requests"], 128),
    maxTokens: integer("max-tokens", values["max-tokens"], 4),
    parallel: integer("parallel", values.parallel, 8),
    logLevel: values["log-level"] ?? "info",
    profileDir: values.profile ?? null,
    json: values.json === true,
  };
}

type Mode = "on" | "off";
const MODES: readonly Mode[] = ["on", "off"];

interface Endpoint {
  name: string;
  method: "GET" | "POST";
  path: string;
  body: string | null;
  requests: number;
}

interface Sent {
  status: number;
  bytes: number;
}

/** One HTTP request on a keep-alive agent; resolves when the whole response has arrived. */
function send(agent: Agent, port: number, endpoint: Endpoint): Promise<Sent> {
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` };
    if (endpoint.body !== null) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(endpoint.body));
    }
    const req = httpRequest({ host: "127.0.0.1", port, method: endpoint.method, path: endpoint.path, agent, headers }, (res) => {
      let bytes = 0;
      res.on("data", (d: Buffer) => (bytes += d.length));
      res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(endpoint.body ?? undefined);
  });
}

interface RoundResult {
  requestsPerSecond: number;
  /** Milliseconds per request, in completion order. */
  latenciesMs: number[];
  /** Daemon CPU time (all threads) per request, microseconds; NaN where /proc is not readable. */
  cpuUsPerRequest: number;
}

/** `total` requests from `concurrency` clients, each on its own kept-alive connection; every answer must be a 200. */
async function runRound(daemon: DaemonRunner, agent: Agent, endpoint: Endpoint, concurrency: number, total: number): Promise<RoundResult> {
  const port = Number(new URL(daemon.url).port);
  const latencies: number[] = [];
  let next = 0;
  const cpuBefore = readCpuTime(daemon.pid);
  const started = performance.now();
  const client = async () => {
    while (next < total) {
      next++;
      const t0 = performance.now();
      const r = await send(agent, port, endpoint);
      latencies.push(performance.now() - t0);
      if (r.status !== 200) throw new Error(`${endpoint.method} ${endpoint.path} answered ${r.status}: the measurement is broken`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = readCpuTime(daemon.pid);
  const cpuNs = cpuBefore && cpuAfter ? cpuAfter.mainNs + cpuAfter.otherNs - cpuBefore.mainNs - cpuBefore.otherNs : Number.NaN;
  return { requestsPerSecond: total / seconds, latenciesMs: latencies, cpuUsPerRequest: cpuNs / 1000 / total };
}

interface ModeSummary {
  /** Median over rounds. */
  requestsPerSecond: number;
  requestsPerSecondRuns: number[];
  /** Over every request of every round. */
  latencyMs: { p50: number; p99: number };
  cpuUsPerRequest: number;
}

interface CaseResult {
  endpoint: string;
  concurrency: number;
  requestsPerRound: number;
  on: ModeSummary;
  off: ModeSummary;
  /** Median over rounds of (off − on) / off requests/s, each round's pair measured back to back. */
  cost: number;
  /** The 25th and 75th percentiles of those per-round costs: the spread the machine's noise gives. */
  costIqr: [number, number];
  /** Median over rounds of the daemon CPU µs per request, on − off. */
  cpuUsAdded: number;
  pass: boolean;
}

interface LoadReport {
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: { rounds: number; maxTokens: number; parallel: number; logLevel: string; model: string };
  cases: CaseResult[];
  /** The target over every case: the median cost. */
  overall: { medianCost: number; worstCost: number; pass: boolean };
  checks: { onRefusesWithoutKey: boolean; onCountsRequests: boolean; offHasNoMetricsRoute: boolean };
}

function summarize(rounds: RoundResult[]): ModeSummary {
  const all = rounds.flatMap((r) => r.latenciesMs);
  return {
    requestsPerSecond: median(rounds.map((r) => r.requestsPerSecond)),
    requestsPerSecondRuns: rounds.map((r) => r.requestsPerSecond),
    latencyMs: { p50: percentile(all, 50), p99: percentile(all, 99) },
    cpuUsPerRequest: median(rounds.map((r) => r.cpuUsPerRequest)),
  };
}

type Rounds = Record<Mode, RoundResult[]>;

/** `rounds` rounds of one case on these daemons, appended to `results`; within a round the two run back to back. */
async function measureRounds(
  daemons: Record<Mode, DaemonRunner>,
  agents: Record<Mode, Agent>,
  endpoint: Endpoint,
  concurrency: number,
  rounds: number,
  results: Rounds,
): Promise<void> {
  progress(`${endpoint.name}, concurrency ${concurrency}: ${rounds} rounds of ${endpoint.requests} requests per daemon`);
  // Warm-up: JIT, the connections, and (for chat) the model load and its first evaluation.
  for (const mode of MODES) await runRound(daemons[mode], agents[mode], endpoint, concurrency, Math.min(endpoint.requests, Math.max(50, concurrency * 4)));
  for (let i = 0; i < rounds; i++) {
    for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
      results[mode].push(await runRound(daemons[mode], agents[mode], endpoint, concurrency, endpoint.requests));
    }
  }
}

function caseResult(endpoint: Endpoint, concurrency: number, results: Rounds): CaseResult {
  const costs = results.on.map((on, i) => 1 - on.requestsPerSecond / results.off[i]!.requestsPerSecond);
  const cpuAdded = results.on.map((on, i) => on.cpuUsPerRequest - results.off[i]!.cpuUsPerRequest);
  const cost = median(costs);
  return {
    endpoint: endpoint.name,
    concurrency,
    requestsPerRound: endpoint.requests,
    on: summarize(results.on),
    off: summarize(results.off),
    cost,
    costIqr: [percentile(costs, 25), percentile(costs, 75)],
    cpuUsAdded: median(cpuAdded),
    pass: cost <= LOAD_TARGET.maxCostFraction,
  };
}

/** That the two configurations are what they claim: the key is checked and requests are counted on, /metrics is gone off. */
async function checkConfigs(daemons: Record<Mode, DaemonRunner>, sentToOn: number): Promise<LoadReport["checks"]> {
  const noKey = await fetch(`${daemons.on.url}/v1/models`);
  const scrape = await fetch(`${daemons.on.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
  const text = scrape.ok ? await scrape.text() : "";
  let counted = 0;
  for (const m of text.matchAll(/^tabagent_requests_total\{[^}]*\} (\d+)$/gm)) counted += Number(m[1]);
  const off = await fetch(`${daemons.off.url}/metrics`);
  return { onRefusesWithoutKey: noKey.status === 401, onCountsRequests: counted >= sentToOn, offHasNoMetricsRoute: off.status === 404 };
}

const pct = (v: number) => `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;

function formatLoadReport(r: LoadReport): string {
  const lines = [
    `tabagent bench load: ${r.setup.model}, ${r.setup.rounds} rounds per case (daemons alternated), --parallel ${r.setup.parallel}, --log-level ${r.setup.logLevel}, chat max_tokens ${r.setup.maxTokens}`,
    `machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), node ${r.machine.node}, 1-min load average ${r.machine.loadAvg1mStart.toFixed(2)} at the start, ${r.machine.loadAvg1mEnd.toFixed(2)} at the end`,
    `"on": API key + metrics (the defaults); "off": no key, --metrics off. Requests/s: median over rounds; latency: all requests.`,
    "",
  ];
  const rows = [["case", "conc", "req/s on", "req/s off", "cost", "(p25..p75)", "p50 on/off ms", "p99 on/off ms", "CPU µs/req on/off", "target"]];
  for (const c of r.cases) {
    rows.push([
      c.endpoint,
      String(c.concurrency),
      c.on.requestsPerSecond.toFixed(0),
      c.off.requestsPerSecond.toFixed(0),
      pct(c.cost),
      `${pct(c.costIqr[0])}..${pct(c.costIqr[1])}`,
      `${c.on.latencyMs.p50.toFixed(2)} / ${c.off.latencyMs.p50.toFixed(2)}`,
      `${c.on.latencyMs.p99.toFixed(2)} / ${c.off.latencyMs.p99.toFixed(2)}`,
      `${c.on.cpuUsPerRequest.toFixed(0)} / ${c.off.cpuUsPerRequest.toFixed(0)}`,
      c.pass ? "PASS" : "MISS",
    ]);
  }
  lines.push(table(rows), "");
  lines.push("cost = median over rounds of 1 − (on req/s ÷ off req/s), each round's pair back to back; (p25..p75): their spread.");
  lines.push(
    `Target: auth + metrics cost ≤ ${(LOAD_TARGET.maxCostFraction * 100).toFixed(0)}% of requests/s (median over cases ${pct(r.overall.medianCost)}, worst ${pct(r.overall.worstCost)}): ${r.overall.pass ? "PASS" : "MISS"}`,
  );
  lines.push(
    `checks: "on" refuses a request without the key: ${r.checks.onRefusesWithoutKey ? "yes" : "NO"}; "on" counted every request in /metrics: ${r.checks.onCountsRequests ? "yes" : "NO"}; "off" has no /metrics (404): ${r.checks.offHasNoMetricsRoute ? "yes" : "NO"}`,
  );
  return lines.join("\n");
}

export async function runLoadSuite(argv: string[]): Promise<number> {
  let options: LoadOptions | null;
  try {
    options = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench load: ${(err as Error).message}\n\n${LOAD_HELP}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(LOAD_HELP);
    return 0;
  }
  const loadAvgStart = loadavg()[0] ?? 0;
  const modelPath = (await ensureFixtures(FIXTURES_DIR)).chatModelPath;
  const common = [
    "--model",
    `${MODEL_ID}=${modelPath}`,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--gpu",
    "off",
    "--threads",
    "1",
    "--context-size",
    "256",
    "--parallel",
    String(options.parallel),
    "--queue-size",
    "1024",
    "--idle-ttl",
    "0",
    "--log-level",
    options.logLevel,
    "--discover",
    "none",
  ];
  const nodeArgs = (mode: Mode, half: number) =>
    options.profileDir === null ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(options.profileDir)}`, `--cpu-prof-name=load-${mode}-${half + 1}.cpuprofile`];
  const serveArgs: Record<Mode, string[]> = { on: [...common, "--api-key", API_KEY, "--metrics", "on"], off: [...common, "--metrics", "off"] };
  const endpoints: Endpoint[] = [
    { name: "GET /v1/models", method: "GET", path: "/v1/models", body: null, requests: options.modelsRequests },
    {
      name: `chat, max_tokens ${options.maxTokens}`,
      method: "POST",
      path: "/v1/chat/completions",
      body: JSON.stringify({ model: MODEL_ID, messages: [{ role: "user", content: "Hello" }], max_tokens: options.maxTokens, temperature: 0 }),
      requests: options.chatRequests,
    },
  ];
  const noRounds = (): Rounds => ({ on: [], off: [] });
  const cases = endpoints.flatMap((endpoint) => options.concurrency.map((concurrency) => ({ endpoint, concurrency, results: noRounds() })));
  let checks: LoadReport["checks"] | null = null;
  // Two halves, fresh daemons each, started in opposite orders.
  for (const [half, order] of [MODES, [...MODES].reverse()].entries()) {
    const rounds = half === 0 ? Math.ceil(options.rounds / 2) : Math.floor(options.rounds / 2);
    const daemons: Partial<Record<Mode, DaemonRunner>> = {};
    const agents: Record<Mode, Agent> = { on: new Agent({ keepAlive: true, maxSockets: 1024 }), off: new Agent({ keepAlive: true, maxSockets: 1024 }) };
    try {
      progress(`half ${half + 1}: starting the "${order[0]}" daemon, then the "${order[1]}" one ("on": API key + metrics; "off": no key, --metrics off)`);
      for (const mode of order) daemons[mode] = await startDaemon({ serveArgs: serveArgs[mode], modelId: MODEL_ID, nodeArgs: nodeArgs(mode, half) });
      const both = daemons as Record<Mode, DaemonRunner>;
      for (const c of cases) await measureRounds(both, agents, c.endpoint, c.concurrency, rounds, c.results);
      const sentToOn = cases.reduce((n, c) => n + c.endpoint.requests * rounds, 0);
      const found = await checkConfigs(both, sentToOn);
      checks =
        checks === null
          ? found
          : {
              onRefusesWithoutKey: checks.onRefusesWithoutKey && found.onRefusesWithoutKey,
              onCountsRequests: checks.onCountsRequests && found.onCountsRequests,
              offHasNoMetricsRoute: checks.offHasNoMetricsRoute && found.offHasNoMetricsRoute,
            };
    } finally {
      agents.on.destroy();
      agents.off.destroy();
      for (const mode of order) {
        const code = await daemons[mode]?.stop();
        if (code !== undefined && code !== 0) progress(`warning: the "${mode}" daemon exited with code ${code}`);
      }
    }
  }
  if (options.profileDir !== null) progress(`CPU profiles written to ${resolve(options.profileDir)} (load-on-N.cpuprofile, load-off-N.cpuprofile)`);
  const results = cases.map((c) => caseResult(c.endpoint, c.concurrency, c.results));
  const costs = results.map((c) => c.cost);
  const cpuList = cpus();
  const report: LoadReport = {
    machine: {
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model.trim() ?? "unknown",
      node: process.version,
      loadAvg1mStart: loadAvgStart,
      loadAvg1mEnd: loadavg()[0] ?? 0,
    },
    setup: { rounds: options.rounds, maxTokens: options.maxTokens, parallel: options.parallel, logLevel: options.logLevel, model: "tiny-chat.gguf (generated)" },
    cases: results,
    overall: { medianCost: median(costs), worstCost: Math.max(...costs), pass: median(costs) <= LOAD_TARGET.maxCostFraction },
    checks: checks!,
  };
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatLoadReport(report)}\n`);
  return report.checks.onRefusesWithoutKey && report.checks.onCountsRequests && report.checks.offHasNoMetricsRoute ? 0 : 1;
}
