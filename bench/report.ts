import type { ConfigSummary } from "./stats.js";

export type Mode = "direct" | "daemon";

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

export interface TargetCheck {
  name: string;
  value: number | null;
  target: string;
  pass: boolean;
}

export interface BenchReport {
  machine: { cpus: number; cpuModel: string; node: string; platform: string; loadAvg1m: number };
  setup: { model: string; modelBytes: number; threads: number; contextSize: number; maxTokens: number; promptTokens: number; prompt: string };
  results: ModeResults[];
  comparisons: Comparison[];
  memory: { idleRssBytes: number | null; loadedRssBytes: number | null; endRssBytes: number | null };
  checks: { allRunsProducedMaxTokens: boolean; promptTokensMatch: boolean; sameTextAsDirect: boolean };
  targets: TargetCheck[];
}

export const TARGETS = { decodeRatio: 0.98, ttftAddedP50Ms: 2, idleRssBytes: 100e6 } as const;

export function compare(r: ModeResults): Comparison {
  return {
    concurrency: r.concurrency,
    decodeRatio: r.daemon.decodeTokPerSec / r.direct.decodeTokPerSec,
    ttftAddedP50Ms: r.daemon.ttftMs.p50 - r.direct.ttftMs.p50,
    ttftAddedP99Ms: r.daemon.ttftMs.p99 - r.direct.ttftMs.p99,
  };
}

export function checkTargets(comparisons: Comparison[], idleRssBytes: number | null): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const c of comparisons) {
    checks.push({ name: `decode tok/s daemon/direct, c=${c.concurrency}`, value: c.decodeRatio, target: `>= ${TARGETS.decodeRatio}`, pass: c.decodeRatio >= TARGETS.decodeRatio });
  }
  for (const c of comparisons) {
    checks.push({ name: `TTFT added p50 (ms), c=${c.concurrency}`, value: c.ttftAddedP50Ms, target: `<= ${TARGETS.ttftAddedP50Ms}`, pass: c.ttftAddedP50Ms <= TARGETS.ttftAddedP50Ms });
  }
  checks.push({
    name: "daemon idle RSS (MB)",
    value: idleRssBytes === null ? null : idleRssBytes / 1e6,
    target: `<= ${TARGETS.idleRssBytes / 1e6}`,
    pass: idleRssBytes !== null && idleRssBytes <= TARGETS.idleRssBytes,
  });
  return checks;
}

const ms = (v: number) => `${v.toFixed(3)} ms`;
const signedMs = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(3)} ms`;
const mb = (v: number | null) => (v === null ? "n/a" : `${(v / 1e6).toFixed(1)} MB`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n");
}

export function formatReport(report: BenchReport): string {
  const { machine, setup } = report;
  const lines: string[] = [];
  lines.push(
    `tabagent bench: ${setup.model} (${(setup.modelBytes / 2 ** 20).toFixed(1)} MiB), threads ${setup.threads}, context ${setup.contextSize}, ` +
      `max_tokens ${setup.maxTokens}, prompt ${setup.promptTokens} tokens, temperature 0, no stop`,
  );
  lines.push(`machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, load average ${machine.loadAvg1m.toFixed(2)} at start`);
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
  lines.push("");
  lines.push(`daemon RSS: idle ${mb(report.memory.idleRssBytes)}, model loaded ${mb(report.memory.loadedRssBytes)}, after the runs ${mb(report.memory.endRssBytes)}`);
  const { checks } = report;
  lines.push(
    `checks: every run produced max_tokens: ${yesNo(checks.allRunsProducedMaxTokens)}; same prompt tokens: ${yesNo(checks.promptTokensMatch)}; ` +
      `daemon text == direct text: ${yesNo(checks.sameTextAsDirect)}`,
  );
  lines.push("");
  lines.push("targets:");
  lines.push(
    table(report.targets.map((t) => ["  " + t.name, t.value === null ? "n/a" : t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])),
  );
  lines.push("");
  lines.push(
    "notes: decode tok/s = (tokens - 1) / (last token - first token), all streams of a run merged (aggregate at c>1); medians over runs.",
  );
  lines.push("       TTFT = request start -> first content token; ITL = gap between consecutive content arrivals; pooled over all streams.");
  lines.push(
    `       daemon = bin/tabagent serve in a child process + the openai client in this process: both, and the llama.cpp thread(s), share the ${machine.cpus} CPUs.`,
  );
  lines.push("       The prompt is repeated, so both modes reuse its KV cache and evaluate only its last token (as the daemon does).");
  return lines.join("\n");
}

function yesNo(v: boolean): string {
  return v ? "yes" : "NO";
}
