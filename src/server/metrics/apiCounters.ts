import type { DaemonMetrics } from "./DaemonMetrics.js";

/** Sum of a counter's values whose labels pass `keep`. */
async function total(metrics: DaemonMetrics, name: string, keep: (labels: Record<string, string | number>) => boolean): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => keep(v.labels as Record<string, string | number>)).reduce((n, v) => n + v.value, 0);
}

/** Totals since start for `/api/stats` (the page turns them into rates): /v1 requests, prompt and generated tokens. */
export function apiCounters(metrics: DaemonMetrics | null): () => Promise<{ requests: number; promptTokens: number; completionTokens: number } | null> {
  if (!metrics) return async () => null;
  return async () => ({
    requests: await total(metrics, "tabagent_requests_total", (l) => String(l.route).startsWith("/v1/")),
    promptTokens: await total(metrics, "tabagent_tokens_total", (l) => l.kind === "prompt"),
    completionTokens: await total(metrics, "tabagent_tokens_total", (l) => l.kind === "completion"),
  });
}
