import { Server as NetServer } from "node:net";
import type { FastifyInstance } from "fastify";
import type { BackendFactory } from "../backends/Backend.js";
import type { ModelDescriptor } from "../core/types.js";
import type { EngineName } from "../core/detectionSchema.js";
import type { Logger } from "pino";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { GgufProbe } from "../backends/llamacpp/GgufProbe.js";
import { LlamaProvider } from "../backends/llamacpp/LlamaProvider.js";
import { defaultDataDir } from "../native/findPythonEnv.js";
import { PythonSetup } from "../backends/python/PythonSetup.js";
import { ProcessRegistry } from "../supervisor/ProcessRegistry.js";
import { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import type { Config } from "../config/configSchema.js";
import { systemClock, type Clock } from "../core/Clock.js";
import { ServiceUnavailableError } from "../core/errors.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import { buildServedRegistry } from "../store/buildServedRegistry.js";
import { startConfiguredPulls } from "../store/startConfiguredPulls.js";
import { storeActions } from "../store/storeActions.js";
import { estimateModelMemory } from "../router/estimateModelMemory.js";
import { ModelRouter } from "../router/ModelRouter.js";
import { ENGINES } from "../engines/engineTable.js";
import type { EngineDeps, EngineServices } from "../engines/EngineSpec.js";
import { preloadList, resolveModelSettings } from "../engines/resolveModelSettings.js";
import { buildApp } from "./buildApp.js";
import { DaemonMetrics } from "./metrics/DaemonMetrics.js";
import { packageVersion } from "./packageVersion.js";
import { ConfigError } from "../core/errors.js";
import { checkBindSafety } from "./security/checkBindSafety.js";
import { resolveApiKeys } from "./security/securitySchema.js";
import { trackInflight } from "./trackInflight.js";
import { threadsWarning } from "./threadsWarning.js";

export interface Daemon {
  processes: ProcessRegistry;
  app: FastifyInstance;
  router: ModelRouter;
  registry: ModelRegistry;
  /** Listens on config host/port; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number; url: string }>;
  /**
   * Stops accepting connections, lets in-flight requests finish up to the grace period (a request arriving meanwhile
   * on a kept-alive connection is answered 503 `shutting_down` with `Connection: close`), then closes the remaining
   * idle connections and unloads models. Idempotent.
   */
  close(): Promise<void>;
}

interface CreateDaemonOptions {
  config: Config;
  logger: Logger;
  clock?: Clock;
  registry?: ModelRegistry;
  /** Engines by name, over the defaults (tests replace one; later versions add more). */
  backends?: Partial<Record<EngineName, BackendFactory>>;
  /** Child processes (llama-server, ...) are recorded here so the CLI can kill them if the daemon dies. */
  processes?: ProcessRegistry;
  /** Where llama-server binaries are looked up (TABAGENT_LLAMA_SERVER, PATH, ...). Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Wires config → registry → router → backends → HTTP app. Everything is passed in; nothing is global. */
export async function createDaemon({
  config,
  logger,
  clock = systemClock,
  registry,
  backends,
  processes = new ProcessRegistry(),
  env = process.env,
}: CreateDaemonOptions): Promise<Daemon> {
  // Exposure first: a daemon that would listen unprotected refuses before it reads a single model.
  const { keys: apiKeys, warnings: keyWarnings } = resolveApiKeys(config);
  for (const warning of keyWarnings) logger.warn(warning);
  const bind = checkBindSafety({ host: config.host, apiKeys, insecureNoAuth: config.insecureNoAuth });
  if (!bind.ok) throw new ConfigError("host", bind.message);
  if (bind.warning) logger.warn(bind.warning);
  const cpus = availableParallelism();
  const tooManyThreads = threadsWarning(config, cpus);
  if (tooManyThreads) logger.warn({ threads: config.threads, cpus }, tooManyThreads);

  // Configured models, then what discovery finds (store, LM Studio, Ollama); hub-sourced entries come from pulls below.
  const served = registry ? null : await buildServedRegistry({ config, env, logger });
  const models = registry ?? served!.registry;
  // Where each model comes from (the management API deletes `store` models only); pulls over the API add to it.
  const origins = new Map(served?.origins ?? []);
  const settingsOf = resolveModelSettings(config);
  const provider = new LlamaProvider({ gpu: config.gpu, threads: config.threads, logger });
  const ggufProbe = new GgufProbe({ logger, cacheFile: join(config.dataDir ?? defaultDataDir(env), "gguf-probes.json") });
  const upstreams = new UpstreamCatalog(config.upstreams, { clock, logger });
  const pythonSetup = config.pythonAutoSetup ? new PythonSetup({ env, dataDir: config.dataDir, logger, processes }) : null;
  const services: EngineServices = { llama: provider, ggufProbe, upstreams, pythonSetup };
  const depsFor = (d: ModelDescriptor): EngineDeps => ({ settings: settingsOf(d.id), config, logger: logger.child({ model: d.id }), clock, processes, env, services });
  // Each engine's code (and native binding) loads here, once, so requests never wait on an import.
  const engineFactories: Partial<Record<EngineName, BackendFactory>> = {};
  for (const spec of Object.values(ENGINES)) {
    if (!spec.load || backends?.[spec.name]) continue;
    const create = await spec.load();
    engineFactories[spec.name] = (d) => create(d, depsFor(d));
  }
  // The callbacks run only when /metrics is scraped, after the router exists. Metrics off: none at all (null).
  const metrics = config.metrics
    ? new DaemonMetrics({
        models: () => router.status().map((s) => ({ id: s.descriptor.id, engine: s.descriptor.engine, state: s.state, running: s.running, queued: s.queued })),
        restarts: () => router.restartCounts(),
        isKnownModel: (id) => router.modelStatus(id) !== undefined,
      })
    : null;
  let draining = false;
  const router: ModelRouter = new ModelRouter({
    onModelLoaded: metrics ? (id, engine, seconds) => metrics.observeLoad(id, engine, seconds) : undefined,
    registry: models,
    clock,
    logger,
    idleTtlMs: config.idleTtlSeconds * 1000,
    idleTtlFor: (id) => {
      const ttl = settingsOf(id).ttlSeconds;
      return ttl === undefined ? undefined : ttl * 1000;
    },
    maxLoadedModels: config.maxLoadedModels,
    memoryBudgetBytes: config.memoryBudget,
    estimateMemory: (d) => estimateModelMemory(d, settingsOf(d.id)),
    aliases: config.aliases,
    queueSize: config.queueSize,
    maxInflight: config.maxInflight,
    upstreams,
    backends: {
      ...engineFactories,
      ...backends,
    },
  });
  // Hub-sourced models: registered now when already stored, else pulled in the background (503 until ready).
  const pulls = registry ? null : await startConfiguredPulls({ config, env, registry: models, router, logger });
  const lifetime = new AbortController();
  const preloads = preloadList(config).filter((id) => !pulls?.pulling.includes(id));
  if (preloads.length > 0) void router.preload(preloads, lifetime.signal);
  const shutdown = new AbortController();
  const app = buildApp({
    router,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    shutdownSignal: shutdown.signal,
    limits: { maxTokensCap: config.maxTokensCap, maxMessages: config.maxMessages },
    requestTimeoutMs: config.requestTimeoutSeconds * 1000,
    idleTimeoutMs: config.idleTimeoutSeconds * 1000,
    security: { apiKeys, allowedHosts: config.allowedHosts, corsOrigins: config.corsOrigins, bindHost: config.host },
    metrics,
    isReady: () => (draining ? { ready: false, reason: "draining" } : { ready: true }),
    isDraining: () => draining,
    version: packageVersion(),
    timings: config.timings,
    management: {
      readOnly: config.readOnly,
      origins,
      store: storeActions({ config, env, registry: models, origins }),
      memoryOf: (d) => estimateModelMemory(d, settingsOf(d.id)),
      memoryBudgetBytes: config.memoryBudget,
      inflight: () => inflight.size,
      systemReport: async () =>
        (await import("../native/doctorReport.js")).doctorReport({ env, threads: config.threads, pythonPath: config.python, dataDir: config.dataDir }),
    },
  });
  const inflight = trackInflight(app);

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      draining = true; // from here every new request is answered 503 shutting_down (buildApp's isDraining)
      // No new connections. http.Server.close() would also drop idle kept-alive connections at once, so a client
      // sending on one would meet a reset instead of the 503: only the listening socket closes now.
      if (app.server.listening) NetServer.prototype.close.call(app.server);
      lifetime.abort();
      await pulls?.stop();
      await pythonSetup?.close(); // a venv setup in progress (pip and all) stops with the daemon
      logger.info({ graceSeconds: config.shutdownGraceSeconds, inflight: inflight.size }, "shutting down: draining in-flight requests");
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), config.shutdownGraceSeconds * 1000);
      });
      if (await Promise.race([inflight.idle().then(() => false), graceOver])) {
        logger.warn({ inflight: inflight.size }, "grace period over: aborting in-flight requests");
        shutdown.abort(new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" }));
        // Generations stop within a token; a request still arriving (a stalled upload) is cut off after a moment.
        const cutoff = setTimeout(() => app.server.closeAllConnections(), 2_000);
        await inflight.idle();
        clearTimeout(cutoff);
      }
      clearTimeout(timer);
      app.server.closeAllConnections(); // every response is done; only idle keep-alive sockets remain
      await app.close();
      await router.close();
      await provider.dispose();
      logger.info("shutdown complete");
    })());

  return {
    app,
    router,
    registry: models,
    processes,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const addr = app.server.address();
      const port = typeof addr === "object" && addr ? addr.port : config.port;
      // A wildcard bind is reachable on loopback, the one name every Host check accepts.
      const shown = config.host === "0.0.0.0" ? "127.0.0.1" : config.host === "::" ? "::1" : config.host;
      const host = shown.includes(":") ? `[${shown}]` : shown;
      return { host: config.host, port, url: `http://${host}:${port}` };
    },
    close,
  };
}
