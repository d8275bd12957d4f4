/** One label set's observations, kept by the caller as plain numbers. */
interface HistogramSnapshot {
  labels: Record<string, string>;
  /** Observations per bucket, not cumulative: `buckets[i]` counts values in (bounds[i-1], bounds[i]]. */
  buckets: ArrayLike<number>;
  sum: number;
  /** Every observation, those above the last bound included. */
  count: number;
}

interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A Prometheus histogram whose counts live outside prom-client, read only when the registry is scraped: the code that
 * observes touches plain numbers (an array slot, a sum) instead of prom-client's label hashing. Registered in a
 * prom-client `Registry` like its own metrics and rendered the same way (`_bucket{le=...}`, `_sum`, `_count`).
 */
export class PlainHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    private readonly read: () => Iterable<HistogramSnapshot>,
  ) {}

  /** What prom-client's Registry renders as text: the label set as shared labels after `le`, as its Histogram does. */
  async getForPromString() {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.read()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.buckets[i] ?? 0;
        values.push({ labels: { le }, sharedLabels: s.labels, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: "+Inf" }, sharedLabels: s.labels, value: s.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The JSON form (`registry.getMetricsAsJSON()`): labels merged, as prom-client's Histogram gives them. */
  async get() {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ labels, sharedLabels, value, metricName }) => ({ labels: { ...labels, ...sharedLabels }, value, metricName })) };
  }

  /** The counts belong to the caller; `registry.resetMetrics()` leaves them alone. */
  reset(): void {}
}
