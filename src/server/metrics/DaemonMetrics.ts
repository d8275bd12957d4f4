import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { GenerationMetrics, GenerationObserver } from "../../api/GenerationMetrics.js";
import { PlainHistogram } from "./PlainHistogram.js";

/** One model as the router sees it at scrape time (`router.status()` mapped to this shape). */
export interface ModelSnapshot {
  id: string;
  /** The engine that serves it; null when nothing may (recorded as `engine="none"`). */
  engine: string | null;
  /** `unloaded`, `loading`, `loaded` or `unloading`; only `loaded` counts as loaded. */
  state: string;
  running: number;
  queued: number;
}

/** Automatic restarts of one model's child process (llama-server, ...) since the daemon started. */
interface RestartCount {
  model: string;
  restarts: number;
}

interface DaemonMetricsOptions {
  /** Every served model, read once per scrape for the queue, running and loaded gauges. Default: none. */
  models?: () => Iterable<ModelSnapshot>;
  /** Child-process restart counts, read once per scrape. Default: none. */
  restarts?: () => Iterable<RestartCount>;
  /**
   * Whether an id names a served model. Ids it refuses are recorded as `model="unknown"`, so a client sending
   * random ids cannot grow the series. Called once per new id (known ids are cached), and on every request
   * that names an unknown id. Default: the id is in `models()`; without `models`, every id (up to the cap).
   */
  isKnownModel?: (id: string) => boolean;
  /** Distinct model label values kept at most; past it a known id is recorded as `model="other"`. Default 256. */
  maxModelLabels?: number;
  /** Distinct route label values kept at most; past it a route is recorded as `route="other"`. Default 128. */
  maxRouteLabels?: number;
  /** Node process metrics (CPU, memory, handles, event loop lag, GC) in the same registry. Default true. */
  processMetrics?: boolean;
}

/** `model` label for requests that name no model (GET /health, /metrics, ...). */
const NO_MODEL = "none";
/** `model` label for an id that is not served (404 model_not_found, or a body that failed validation). */
const UNKNOWN_MODEL = "unknown";
/** `model` / `route` label once the cap on distinct values is reached. */
const OTHER_LABEL = "other";
/** `route` label for requests that matched no route (404 unknown_route): the raw URL is never a label. */
export const UNMATCHED_ROUTE = "unmatched";

/** Seconds; generation requests can stream for minutes. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** 1 ms .. 10 s: a warm small model answers in milliseconds, a cold load or a long prompt in seconds. */
const FIRST_TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** 0.1 ms .. 1 s between streamed pieces. */
const INTER_TOKEN_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** 100 ms .. 5 min: a tiny GGUF loads in well under a second, a large one through llama-server in minutes. */
const LOAD_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** The per-model series the token hot path touches, resolved once per model so a token costs no label lookup. */
interface ModelSeries {
  readonly label: string;
  readonly promptTokens: Counter.Internal;
  readonly completionTokens: Counter.Internal;
  readonly firstToken: PlainSeries;
  readonly interToken: PlainSeries;
}

/** One label set of a PlainHistogram, observed as plain numbers (every streamed token lands here). */
class PlainSeries {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length);
  }
  observe(value: number): void {
    const i = this.bounds.findIndex((b) => value <= b);
    if (i >= 0) this.buckets[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * The answered requests of one route, as plain numbers: `observeRequest` runs for every request, so it only bumps
 * these; the registry reads them when scraped.
 */
interface RouteRequests {
  readonly labels: { route: string };
  /** Durations per bucket of REQUEST_BUCKETS, not cumulative (longer ones are only in `count`). */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
  /** Model label → status → requests. */
  readonly byModel: Map<string, Map<number | string, number>>;
}

/**
 * The daemon's Prometheus metrics, in a registry of its own (never prom-client's global one), so several daemons
 * can live in one process. Request-level series are recorded by `registerRequestMetrics`; token-level series by
 * `startGeneration`, whose observer sees each chunk of a generation; gauges are read from the router at each scrape.
 */
export class DaemonMetrics implements GenerationMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"route" | "model" | "status">;
  private readonly tokens: Counter<"model" | "kind">;

  private readonly queueDepth: Gauge<"model">;
  private readonly running: Gauge<"model">;
  private readonly loaded: Gauge<"model" | "engine">;
  private readonly loadDuration: Histogram<"model" | "engine">;
  private readonly childRestarts: Counter<"model">;

  private readonly series = new Map<string, ModelSeries>();
  /** Known ids; unknown ids are never stored, so random ids cannot grow this map. */
  private readonly knownModels = new Set<string>();
  /** By route label; a route past the cap is counted under `other`. */
  private readonly requestsByRoute = new Map<string, RouteRequests>();
  private readonly options: DaemonMetricsOptions;

  constructor(options: DaemonMetricsOptions = {}) {
    this.options = options;
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    // The two per-request series are counted in plain numbers (requestsByRoute) and read into the registry at scrape.
    this.requests = new Counter({
      name: "tabagent_requests_total",
      help: "HTTP requests answered, by route pattern, model and status code.",
      labelNames: ["route", "model", "status"],
      registers,
      collect: () => {
        // A counter cannot be set: it is rebuilt from the totals, which only grow.
        this.requests.reset();
        for (const r of this.requestsByRoute.values()) {
          for (const [model, statuses] of r.byModel) for (const [status, n] of statuses) this.requests.inc({ route: r.labels.route, model, status: String(status) }, n);
        }
      },
    });
    const requestDuration = new PlainHistogram(
      "tabagent_request_duration_seconds",
      "Time from request arrival to the end of the response (streams included), by route pattern.",
      REQUEST_BUCKETS,
      () => this.requestsByRoute.values(),
    );
    // prom-client's registry takes any metric with its shape (name, help, type, get, reset); its types list only its own classes.
    this.registry.registerMetric(requestDuration as unknown as Histogram);
    this.tokens = new Counter({
      name: "tabagent_tokens_total",
      help: "Tokens processed, as counted by the model's tokenizer: kind=prompt (read) or completion (generated).",
      labelNames: ["model", "kind"],
      registers,
    });
    // Observed for every generated piece: plain numbers per model, read into the registry at scrape.
    const perModel = (pick: (s: ModelSeries) => PlainSeries) => () => [...new Set(this.series.values())].map(pick);
    this.registry.registerMetric(
      new PlainHistogram(
        "tabagent_time_to_first_token_seconds",
        "Time from request arrival (queue wait and model load included) to the first generated text.",
        FIRST_TOKEN_BUCKETS,
        perModel((s) => s.firstToken),
      ) as unknown as Histogram,
    );
    this.registry.registerMetric(
      new PlainHistogram(
        "tabagent_inter_token_latency_seconds",
        "Time between consecutive pieces of generated text (one piece is about one token).",
        INTER_TOKEN_BUCKETS,
        perModel((s) => s.interToken),
      ) as unknown as Histogram,
    );
    this.queueDepth = new Gauge({
      name: "tabagent_queue_depth",
      help: "Requests waiting for a free slot of the model.",
      labelNames: ["model"],
      registers,
    });
    this.running = new Gauge({
      name: "tabagent_running_requests",
      help: "Requests holding a slot of the model (running).",
      labelNames: ["model"],
      registers,
    });
    this.loaded = new Gauge({
      name: "tabagent_model_loaded",
      help: "1 when the model is loaded in its engine, else 0.",
      labelNames: ["model", "engine"],
      registers,
    });
    this.loadDuration = new Histogram({
      name: "tabagent_model_load_duration_seconds",
      help: "Time a successful model load took.",
      labelNames: ["model", "engine"],
      buckets: LOAD_BUCKETS,
      registers,
    });
    this.childRestarts = new Counter({
      name: "tabagent_child_restarts_total",
      help: "Automatic restarts of a model's child process after it crashed.",
      labelNames: ["model"],
      registers,
    });
  }

  /** `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Reads the router's state into the gauges, then renders every series in the Prometheus text format. */
  async scrape(): Promise<string> {
    this.collectModels();
    this.collectRestarts();
    return this.registry.metrics();
  }

  /** The label a model id is recorded under: the id when it is served, else `unknown` (or `none`, `other`). */
  modelLabel(id: string | undefined | null): string {
    if (id === undefined || id === null || id === "") return NO_MODEL;
    if (this.knownModels.has(id)) return id;
    if (!this.isKnown(id)) return UNKNOWN_MODEL;
    if (this.knownModels.size >= (this.options.maxModelLabels ?? 256)) return OTHER_LABEL;
    this.knownModels.add(id);
    return id;
  }

  /** One answered HTTP request. `route` must be the route pattern (`/v1/models/:id`), never the raw URL. */
  observeRequest(route: string, model: string | undefined, status: number | string, seconds: number): void {
    const r = this.requestsByRoute.get(route) ?? this.addRoute(route);
    let i = 0;
    while (i < REQUEST_BUCKETS.length && seconds > REQUEST_BUCKETS[i]!) i++;
    if (i < REQUEST_BUCKETS.length) r.buckets[i]!++;
    r.sum += seconds;
    r.count++;
    const label = this.modelLabel(model);
    let statuses = r.byModel.get(label);
    if (!statuses) r.byModel.set(label, (statuses = new Map<number | string, number>()));
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }

  private addRoute(route: string): RouteRequests {
    const label = this.requestsByRoute.size >= (this.options.maxRouteLabels ?? 128) ? OTHER_LABEL : route;
    let r = this.requestsByRoute.get(label);
    if (!r) {
      r = { labels: { route: label }, buckets: new Float64Array(REQUEST_BUCKETS.length), sum: 0, count: 0, byModel: new Map() };
      this.requestsByRoute.set(label, r);
    }
    return r;
  }

  /** Token counts from a generation's (or an embedding's) usage. */
  observeTokens(model: string, prompt: number, completion: number): void {
    const s = this.seriesFor(model);
    if (prompt > 0) s.promptTokens.inc(prompt);
    if (completion > 0) s.completionTokens.inc(completion);
  }

  observeFirstToken(model: string, seconds: number): void {
    this.seriesFor(model).firstToken.observe(seconds);
  }

  observeInterToken(model: string, seconds: number): void {
    this.seriesFor(model).interToken.observe(seconds);
  }

  /** A successful load (ModelRunner.startLoad's success branch). */
  observeLoad(model: string, engine: string | null, seconds: number): void {
    this.loadDuration.observe({ model: this.modelLabel(model), engine: engine ?? "none" }, seconds);
  }

  /**
   * Starts timing one generation. `startedAtMs` is on the `performance.now()` clock; pass the request's arrival
   * (`performance.now() - reply.elapsedTime`) so the first-token time includes the queue and the load.
   */
  startGeneration(model: string, startedAtMs: number = performance.now()): GenerationObserver {
    const s = this.seriesFor(model);
    let last = -1;
    return {
      chunk(chunk) {
        if (chunk.type === "text") {
          if (chunk.text === "") return;
          const now = performance.now();
          if (last < 0) s.firstToken.observe((now - startedAtMs) / 1000);
          else s.interToken.observe((now - last) / 1000);
          last = now;
        } else if (chunk.type === "usage") {
          if (chunk.usage.promptTokens > 0) s.promptTokens.inc(chunk.usage.promptTokens);
          if (chunk.usage.completionTokens > 0) s.completionTokens.inc(chunk.usage.completionTokens);
        }
      },
    };
  }

  private isKnown(id: string): boolean {
    const { isKnownModel, models } = this.options;
    if (isKnownModel) return isKnownModel(id);
    if (models) {
      for (const m of models()) if (m.id === id) return true;
      return false;
    }
    return true;
  }

  private seriesFor(model: string): ModelSeries {
    const cached = this.series.get(model);
    if (cached) return cached;
    const label = this.modelLabel(model);
    // Unknown ids share the series of their label and are not cached under their own id.
    const shared = this.series.get(label);
    if (shared) return shared;
    const s: ModelSeries = {
      label,
      promptTokens: this.tokens.labels(label, "prompt"),
      completionTokens: this.tokens.labels(label, "completion"),
      firstToken: new PlainSeries({ model: label }, FIRST_TOKEN_BUCKETS),
      interToken: new PlainSeries({ model: label }, INTER_TOKEN_BUCKETS),
    };
    this.series.set(label, s);
    return s;
  }

  private collectModels(): void {
    this.queueDepth.reset();
    this.running.reset();
    this.loaded.reset();
    const models = this.options.models;
    if (!models) return;
    for (const m of models()) {
      const model = this.modelLabel(m.id);
      this.queueDepth.set({ model }, m.queued);
      this.running.set({ model }, m.running);
      this.loaded.set({ model, engine: m.engine ?? "none" }, m.state === "loaded" ? 1 : 0);
    }
  }

  private collectRestarts(): void {
    const restarts = this.options.restarts;
    if (!restarts) return;
    // The source holds the totals; a counter cannot be set, so it is rebuilt from them at each scrape.
    this.childRestarts.reset();
    for (const { model, restarts: n } of restarts()) this.childRestarts.inc({ model: this.modelLabel(model) }, n);
  }
}
