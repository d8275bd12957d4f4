import type { CpuTime } from "./cpuTime.js";
import type { ConfigSummary } from "./stats.js";

export interface ModeResults {
  concurrency: number;
  direct: ConfigSummary;
  daemon: ConfigSummary;
}

export interface Comparison {
  concurrency: number;
  /** daemon / direct decode tokens per second. */
  decodeRatio: number;
  /** daemon - direct TTFT, ms. */
  ttftAddedP50Ms: number;
  ttftAddedP99Ms: number;
}

/** CPU microseconds per generated token. */
export interface CpuPerToken {
  mainUs: number;
  otherUs: number;
  waitUs: number;
}

export interface CpuBreakdown {
  concurrency: number;
  /** The bench process during direct runs: main = JS (node-llama-cpp's loop, detokenize), other = llama.cpp threads. */
  direct: CpuPerToken;
  /** The daemon during daemon runs: main = JS (node-llama-cpp + HTTP/SSE), other = llama.cpp threads. */
  daemon: CpuPerToken;
  /** The bench process during daemon runs: the openai client receiving and parsing the stream. */
  client: CpuPerToken;
}

export interface LateArrivalResult {
  /** Streams already decoding when the late request arrives. */
  background: number;
  backgroundTokens: number;
  direct: { p50: number; max: number };
  daemon: { p50: number; max: number };
}

export interface TargetCheck {
  name: string;
  value: number | null;
  target: string;
  pass: boolean;
}

export interface BenchReport {
  machine: { cpus: number; cpuModel: string; node: string; platform: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  setup: { model: string; modelBytes: number; threads: number; contextSize: number; maxTokens: number; promptTokens: number; prompt: string };
  results: ModeResults[];
  comparisons: Comparison[];
  /** GET /v1/models through the same openai client: the HTTP + SDK part of every daemon TTFT. */
  roundTripMs: { p50: number; p99: number };
  /** Null when only concurrency 1 was measured. */
  lateArrival: LateArrivalResult | null;
  memory: { idleRssBytes: number | null; loadedRssBytes: number | null; endRssBytes: number | null };
  /** Null where per-thread CPU time cannot be read. */
  cpu: CpuBreakdown[] | null;
  checks: {
    allRunsProducedMaxTokens: boolean;
    promptTokensMatch: boolean;
    sameTextAtC1: boolean;
    /** Streams whose text equals the c=1 text, as "matching/total", per mode. */
    sameTextConcurrent: { concurrency: number; direct: string; daemon: string }[];
  };
  targets: TargetCheck[];
}

const TARGETS = { decodeRatio: 0.98, ttftAddedP50Ms: 2, idleRssBytes: 100e6 } as const;

export function compare(r: ModeResults): Comparison {
  return {
    concurrency: r.concurrency,
    decodeRatio: r.daemon.decodeTokPerSec / r.direct.decodeTokPerSec,
    ttftAddedP50Ms: r.daemon.ttftMs.p50 - r.direct.ttftMs.p50,
    ttftAddedP99Ms: r.daemon.ttftMs.p99 - r.direct.ttftMs.p99,
  };
}

export function perToken(cpu: CpuTime, tokens: number): CpuPerToken {
  const us = (ns: number) => (tokens > 0 ? ns / 1000 / tokens : Number.NaN);
  return { mainUs: us(cpu.mainNs), otherUs: us(cpu.otherNs), waitUs: us(cpu.waitNs) };
}

export function checkTargets(comparisons: Comparison[], idleRssBytes: number | null): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const c of comparisons) {
    checks.push({
      name: `decode tok/s daemon/direct, c=${c.concurrency}`,
      value: c.decodeRatio,
      target: `>= ${TARGETS.decodeRatio}`,
      pass: c.decodeRatio >= TARGETS.decodeRatio,
    });
  }
  for (const c of comparisons) {
    checks.push({
      name: `TTFT added p50 (ms), c=${c.concurrency}`,
      value: c.ttftAddedP50Ms,
      target: `<= ${TARGETS.ttftAddedP50Ms}`,
      pass: c.ttftAddedP50Ms <= TARGETS.ttftAddedP50Ms,
    });
  }
  checks.push({
    name: "daemon idle RSS (MB)",
    value: idleRssBytes === null ? null : idleRssBytes / 1e6,
    target: `<= ${TARGETS.idleRssBytes / 1e6}`,
    pass: idleRssBytes !== null && idleRssBytes <= TARGETS.idleRssBytes,
  });
  return checks;
}

export const ms = (v: number) => `${v.toFixed(2)} ms`;
export const signedMs = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} ms`;
const mb = (v: number | null) => (v === null ? "n/a" : `${(v / 1e6).toFixed(1)} MB`);
const yesNo = (v: boolean) => (v ? "yes" : "NO");

/** Left-aligned first column, right-aligned others. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatReport(report: BenchReport): string {
  const { machine, setup } = report;
  const lines: string[] = [];
  lines.push(
    `tabagent bench: ${setup.model} (${(setup.modelBytes / 2 ** 20).toFixed(1)} MiB), threads ${setup.threads}, context ${setup.contextSize}, ` +
      `max_tokens ${setup.maxTokens}, prompt ${setup.promptTokens} tokens, temperature 0, no stop`,
  );
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load average ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  lines.push("");

  const rows: string[][] = [["mode", "conc", "runs", "decode tok/s", "(min..max)", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99"]];
  for (const r of report.results) {
    for (const mode of ["direct", "daemon"] as const) {
      const s = r[mode];
      rows.push([
        mode,
        String(r.concurrency),
        String(s.runs),
        s.decodeTokPerSec.toFixed(0),
        `${Math.min(...s.decodeTokPerSecRuns).toFixed(0)}..${Math.max(...s.decodeTokPerSecRuns).toFixed(0)}`,
        ms(s.ttftMs.p50),
        ms(s.ttftMs.p99),
        ms(s.itlMs.p50),
        ms(s.itlMs.p99),
      ]);
    }
  }
  for (const c of report.comparisons) {
    rows.push(["daemon vs direct", String(c.concurrency), "", `x${c.decodeRatio.toFixed(3)}`, "", signedMs(c.ttftAddedP50Ms), signedMs(c.ttftAddedP99Ms), "", ""]);
  }
  lines.push(table(rows));
  lines.push(`HTTP + openai client floor (GET /v1/models round trip): p50 ${ms(report.roundTripMs.p50)}, p99 ${ms(report.roundTripMs.p99)}; part of every daemon TTFT`);
  const late = report.lateArrival;
  if (late) {
    lines.push(
      `late arrival (1 request while ${late.background} streams of ${late.backgroundTokens} tokens decode): TTFT p50/max ` +
        `direct ${ms(late.direct.p50)} / ${ms(late.direct.max)}, daemon ${ms(late.daemon.p50)} / ${ms(late.daemon.max)}`,
    );
  }
  lines.push(`daemon RSS: idle ${mb(report.memory.idleRssBytes)}, model loaded ${mb(report.memory.loadedRssBytes)}, after the runs ${mb(report.memory.endRssBytes)}`);

  if (report.cpu) {
    lines.push("");
    lines.push("CPU per generated token, µs (per-thread run time from /proc/<pid>/task/*/schedstat; other threads = llama.cpp on");
    lines.push("libuv pool threads + V8 helpers; waiting = runnable but no free core):");
    const cpuRows: string[][] = [["  process, during that mode's runs", "main JS thread", "other threads", "total", "waiting"]];
    for (const b of report.cpu) {
      const row = (label: string, c: CpuPerToken) => [
        `  ${label}, c=${b.concurrency}`,
        c.mainUs.toFixed(0),
        c.otherUs.toFixed(0),
        (c.mainUs + c.otherUs).toFixed(0),
        c.waitUs.toFixed(0),
      ];
      cpuRows.push(row("direct: bench process", b.direct), row("daemon: tabagent process", b.daemon), row("daemon: openai client (bench)", b.client));
    }
    lines.push(table(cpuRows));
  }

  const { checks } = report;
  lines.push("");
  lines.push(
    `checks: every stream produced the tokens it asked for: ${yesNo(checks.allRunsProducedMaxTokens)}; same prompt tokens: ${yesNo(checks.promptTokensMatch)}; ` +
      `c=1 daemon text == direct text: ${yesNo(checks.sameTextAtC1)}`,
  );
  for (const c of checks.sameTextConcurrent) {
    lines.push(`        c=${c.concurrency} streams with the c=1 text: direct ${c.direct}, daemon ${c.daemon} (batching may flip near-ties)`);
  }
  lines.push("");
  lines.push("targets:");
  lines.push(table(report.targets.map((t) => ["  " + t.name, t.value === null ? "n/a" : t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])));
  lines.push("");
  lines.push("notes: decode tok/s = (tokens - 1) / (last token - first token), all streams of a run merged (aggregate at c>1); medians over runs.");
  lines.push("       TTFT = request start -> first content token; ITL = gap between consecutive content arrivals; pooled over all streams.");
  lines.push(`       daemon = bin/tabagent serve in a child process + the openai client in this process: both, and the llama.cpp thread(s),`);
  lines.push(`       share the ${machine.cpus} CPUs. The prompt repeats, so both modes reuse its KV cache and evaluate only its last token.`);
  return lines.join("\n");
}
