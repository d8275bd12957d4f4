import { Server as NetServer } from "node:net";
import type { FastifyInstance } from "fastify";
import type { BackendFactory } from "../backends/Backend.js";
import type { EngineName } from "../core/detectionSchema.js";
import type { Logger } from "pino";
import { join } from "node:path";
import { GgufProbe } from "../backends/llamacpp/GgufProbe.js";
import { LlamaProvider } from "../backends/llamacpp/LlamaProvider.js";
import { defaultDataDir } from "../native/findPythonEnv.js";
import { NodeLlamaCppBackend } from "../backends/llamacpp/NodeLlamaCppBackend.js";
import { OnnxBackend } from "../backends/onnx/OnnxBackend.js";
import { UpstreamBackend } from "../backends/upstream/UpstreamBackend.js";
import { LlamaServerBackend } from "../backends/llamaServer/LlamaServerBackend.js";
import { PythonSetup } from "../backends/python/PythonSetup.js";
import { TransformersBackend } from "../backends/transformers/TransformersBackend.js";
import { ProcessRegistry } from "../supervisor/ProcessRegistry.js";
import type { ModelDescriptor } from "../core/types.js";
import { UpstreamCatalog } from "../backends/upstream/UpstreamCatalog.js";
import type { Config } from "../config/configSchema.js";
import { systemClock, type Clock } from "../core/Clock.js";
import { ServiceUnavailableError } from "../core/errors.js";
import type { ModelRegistry } from "../registry/ModelRegistry.js";
import { buildServedRegistry } from "../store/buildServedRegistry.js";
import { startConfiguredPulls } from "../store/startConfiguredPulls.js";
import { estimateModelMemory } from "../router/estimateModelMemory.js";
import { perModelSettings, preloadList } from "../router/perModelSettings.js";
import { ModelRouter } from "../router/ModelRouter.js";
import { buildApp } from "./buildApp.js";
import { DaemonMetrics } from "./metrics/DaemonMetrics.js";
import { packageVersion } from "./packageVersion.js";
import { ConfigError } from "../core/errors.js";
import { checkBindSafety } from "./security/checkBindSafety.js";
import { resolveApiKeys } from "./security/securitySchema.js";
import { trackInflight } from "./trackInflight.js";

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

export interface CreateDaemonOptions {
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
export async function createDaemon({ config, logger, clock = systemClock, registry, backends, processes = new ProcessRegistry(), env = process.env }: CreateDaemonOptions): Promise<Daemon> {
  // Exposure first: a daemon that would listen unprotected refuses before it reads a single model.
  const { keys: apiKeys, warnings: keyWarnings } = resolveApiKeys(config);
  for (const warning of keyWarnings) logger.warn(warning);
  const bind = checkBindSafety({ host: config.host, apiKeys, insecureNoAuth: config.insecureNoAuth });
  if (!bind.ok) throw new ConfigError("host", bind.message);
  if (bind.warning) logger.warn(bind.warning);

  // Configured models, then what discovery finds (store, LM Studio, Ollama); hub-sourced entries come from pulls below.
  const models = registry ?? (await buildServedRegistry({ config, env, logger })).registry;
  const perModel = perModelSettings(config);
  const own = (d: ModelDescriptor) => perModel(d.id) ?? {};
  const provider = new LlamaProvider({ gpu: config.gpu, threads: config.threads, logger });
  const ggufProbe = new GgufProbe({ logger, cacheFile: join(config.dataDir ?? defaultDataDir(env), "gguf-probes.json") });
  const upstreams = new UpstreamCatalog(config.upstreams, { clock, logger });
  const llamaServer = (descriptor: ModelDescriptor, variant: "standard" | "bitnet") =>
    new LlamaServerBackend(descriptor, {
      variant,
      logger: logger.child({ model: descriptor.id }),
      clock,
      processes,
      env,
      threads: own(descriptor).threads ?? config.threads,
      contextSize: own(descriptor).contextSize ?? config.contextSize,
      parallel: own(descriptor).parallel ?? config.parallel,
      gpuLayers: own(descriptor).gpuLayers ?? config.gpuLayers,
      binaryPath: descriptor.engineOptions?.llamaServerPath,
      extraArgs: [...(descriptor.engineOptions?.args ?? []), ...(own(descriptor).chatTemplate ? ["--jinja", "--chat-template", own(descriptor).chatTemplate!] : [])],
      stallTimeoutMs: config.stallTimeoutSeconds * 1000,
    });
  const pythonSetup = config.pythonAutoSetup ? new PythonSetup({ env, dataDir: config.dataDir, logger, processes }) : null;
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
    idleTtlFor: (id) => (perModel(id)?.ttlSeconds === undefined ? undefined : perModel(id)!.ttlSeconds! * 1000),
    maxLoadedModels: config.maxLoadedModels,
    memoryBudgetBytes: config.memoryBudget,
    estimateMemory: (d) => estimateModelMemory(d, { contextSize: own(d).contextSize ?? config.contextSize, parallel: own(d).parallel ?? config.parallel }),
    aliases: config.aliases,
    queueSize: config.queueSize,
    maxInflight: config.maxInflight,
    upstreams,
    backends: {
      upstream: (d) => new UpstreamBackend(d, upstreams.client(d.upstream!.name)!, upstreams.parallel(d.upstream!.name)),
      "llama-server": (d) => llamaServer(d, "standard"),
      "llama-server-bitnet": (d) => llamaServer(d, "bitnet"),
      transformers: (descriptor) =>
        new TransformersBackend(descriptor, {
          logger: logger.child({ model: descriptor.id }),
          clock,
          processes,
          env,
          threads: own(descriptor).threads ?? config.threads,
          parallel: own(descriptor).parallel ?? config.parallel,
          pythonPath: config.python,
          dataDir: config.dataDir,
          setup: pythonSetup,
          stallTimeoutMs: config.stallTimeoutSeconds * 1000,
          chatTemplate: own(descriptor).chatTemplate,
        }),
      "node-llama-cpp": (descriptor) =>
        new NodeLlamaCppBackend(descriptor, {
          provider,
          logger: logger.child({ model: descriptor.id }),
          threads: own(descriptor).threads ?? config.threads,
          contextSize: own(descriptor).contextSize ?? config.contextSize,
          parallel: own(descriptor).parallel ?? config.parallel,
          gpuLayers: own(descriptor).gpuLayers ?? config.gpuLayers,
          chatTemplate: own(descriptor).chatTemplate,
          probe: ggufProbe,
        }),
      onnxruntime: (descriptor) =>
        new OnnxBackend(descriptor, {
          logger: logger.child({ model: descriptor.id }),
          threads: own(descriptor).threads ?? config.threads,
          contextSize: own(descriptor).contextSize ?? config.contextSize,
          parallel: own(descriptor).parallel ?? config.parallel,
          providers: config.onnxProviders,
          chatTemplate: own(descriptor).chatTemplate,
        }),
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
