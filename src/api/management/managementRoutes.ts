import { freemem, totalmem } from "node:os";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { AbortedError, ModelNotFoundError, ModelNotServableError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import type { ModelRouter, ModelStatus } from "../../router/ModelRouter.js";
import { downloadRefusal } from "../../router/ModelCatalog.js";
import { ManagementForbiddenError, ModelBusyError, ModelNotLocalError, NotRemovableError, ReadOnlyError } from "./managementErrors.js";
import type { ManagementStore, OriginInfo } from "./ManagementStore.js";
import { modelInfo } from "./modelInfo.js";
import { parseStrictBody } from "./parseStrictBody.js";
import { registerPullRoute } from "./registerPullRoute.js";

export interface ManagementOptions {
  router: ModelRouter;
  /** Config `readOnly`: every POST and DELETE under /api is refused (403 read_only). */
  readOnly: boolean;
  /** Where each served model comes from, by id; pulls add to it and deletes take from it. */
  origins: Map<string, OriginInfo>;
  /** Pulls and deletes in the store (src/store/storeActions.ts). */
  store: ManagementStore;
  /** Whether the caller may change things: a valid key, or no keys on a loopback-only daemon (registerSecurity). */
  isTrusted: (request: FastifyRequest) => boolean;
  /** A model's estimated resident size when loaded (the number the memory budget uses). */
  memoryOf: (descriptor: ModelDescriptor) => number;
  /** Config `memoryBudget`; 0: none. */
  memoryBudgetBytes: number;
  /** HTTP requests whose response has not finished. */
  inflight: () => number;
  /** The hardware and engine report (`tabagent doctor --json`). */
  systemReport: () => Promise<unknown>;
  /** Totals since start for /api/stats (requests to /v1, prompt and generated tokens); null with metrics off. */
  counters: () => Promise<{ requests: number; promptTokens: number; completionTokens: number } | null>;
  version?: string;
  /** Aborted when the daemon stops: a pull in progress stops too (its partial file stays for the next pull). */
  shutdownSignal: AbortSignal;
}

const SYSTEM_REPORT_TTL_MS = 5 * 60_000;

/** `{}` or no body at all; anything else names the field the route does not take. */
function parseEmptyBody(body: unknown): void {
  if (body !== undefined && body !== null && body !== "") parseStrictBody(z.object({}), body);
}

/** The status of a model by id, or 404. */
function statusOf(router: ModelRouter, id: string): ModelStatus {
  const s = router.modelStatus(id);
  if (!s) throw new ModelNotFoundError(id);
  return s;
}

/** The local descriptor a load or unload acts on (an alias acts on its model), or the error that says why none. */
function localModel(router: ModelRouter, id: string): ModelDescriptor {
  const s = statusOf(router, id);
  if (s.download) {
    const { doneBytes, totalBytes, error } = s.download;
    const state = s.state === "download-failed" ? "download-failed" : "downloading";
    throw downloadRefusal(id, { descriptor: s.descriptor, state, doneBytes, totalBytes, bytesPerSecond: null, error });
  }
  const d = router.registry.get(s.aliasOf ?? id) ?? s.descriptor;
  if (d.engine === "upstream") throw new ModelNotLocalError(id);
  if (d.engine === null) throw new ModelNotServableError(id, d.detection.warnings.at(-1) ?? d.detection.reason);
  return d;
}

/**
 * The management API (docs/api.md "Management API"): models, pulls, load, unload, delete, the system report and
 * what is running. Reads pass the app's Host, Origin and key checks like `/v1`; writes also need a trusted caller
 * and a daemon that is not read-only, checked before the body is read.
 */
export function managementRoutes(app: FastifyInstance, options: ManagementOptions): void {
  const { router, origins, memoryOf } = options;
  const startedAt = Date.now();
  const mutating = async (request: FastifyRequest) => {
    if (options.readOnly) throw new ReadOnlyError();
    if (!options.isTrusted(request)) throw new ManagementForbiddenError();
  };
  const originOf = (id: string) => origins.get(id);
  const info = (s: ModelStatus) => modelInfo(s, originOf, memoryOf);
  const signalOf = (request: FastifyRequest, reply: FastifyReply) => {
    const controller = new AbortController();
    reply.raw.once("close", () => {
      if (!reply.raw.writableFinished) controller.abort(new AbortedError("The client closed the connection."));
    });
    return AbortSignal.any([controller.signal, options.shutdownSignal]);
  };

  app.get("/api/models", async () => {
    await router.refreshUpstreams();
    return { models: router.status().map(info) };
  });

  registerPullRoute(app, {
    store: options.store,
    preHandler: mutating,
    signalOf,
    describe: (id) => {
      const s = router.modelStatus(id);
      return s ? info(s) : null;
    },
  });

  app.post("/api/models/:id/load", { preHandler: mutating }, async (request, reply) => {
    const { id } = request.params as { id: string };
    parseEmptyBody(request.body);
    const descriptor = localModel(router, id);
    const started = performance.now();
    await router.load(descriptor, signalOf(request, reply));
    return { id, state: "loaded", load_ms: Math.round(performance.now() - started), memory_bytes: memoryOf(descriptor) };
  });

  app.post("/api/models/:id/unload", { preHandler: mutating }, async (request) => {
    const { id } = request.params as { id: string };
    parseEmptyBody(request.body);
    const descriptor = localModel(router, id);
    const outcome = await router.unload(descriptor.id);
    if (outcome === "busy") {
      const s = statusOf(router, descriptor.id);
      throw new ModelBusyError(id, s.running, s.queued);
    }
    return { id, state: "unloaded", was_loaded: outcome === "unloaded" };
  });

  app.delete("/api/models/:id", { preHandler: mutating }, async (request) => {
    const { id } = request.params as { id: string };
    const s = statusOf(router, id);
    const origin = s.aliasOf ? undefined : origins.get(id);
    if (!origin?.store || origin.origin !== "store") {
      const from = s.aliasOf
        ? `an alias of '${s.aliasOf}'`
        : s.descriptor.engine === "upstream"
          ? "an upstream server"
          : origin
            ? `${origin.origin} (${origin.label})`
            : "the config";
      throw new NotRemovableError(id, from);
    }
    if (s.running > 0 || s.queued > 0) throw new ModelBusyError(id, s.running, s.queued);
    // Unlisted first, so no new request can reach it; then unloaded, unless a request slipped in meanwhile.
    const descriptor = router.registry.get(id)!;
    router.registry.remove(id);
    if ((await router.unload(id)) === "busy") {
      router.registry.add(descriptor);
      const now = statusOf(router, id);
      throw new ModelBusyError(id, now.running, now.queued);
    }
    router.forget(id);
    origins.delete(id);
    const removed = await options.store.remove(origin.store);
    request.log.info({ model: id, freedBytes: removed.freedBytes }, "model deleted from the store");
    return { id, deleted: true, freed_bytes: removed.freedBytes };
  });

  let report: { at: number; value: Promise<unknown> } | null = null;
  app.get("/api/system", async (request) => {
    const asked = (request.query as Record<string, unknown>).refresh;
    const refresh = asked === "1" || asked === "true";
    if (!report || refresh || Date.now() - report.at > SYSTEM_REPORT_TTL_MS) {
      const value = options.systemReport();
      report = { at: Date.now(), value };
      value.catch(() => {
        if (report?.value === value) report = null;
      });
    }
    return {
      daemon: { version: options.version ?? null, pid: process.pid, uptime_seconds: Math.round((Date.now() - startedAt) / 1000) },
      memory: { total_bytes: totalmem(), free_bytes: freemem(), rss_bytes: process.memoryUsage.rss() },
      report: await report.value,
    };
  });

  app.get("/api/ps", async () => {
    const all = router.status().filter((s) => !s.aliasOf && s.descriptor.engine !== "upstream");
    const active = all.filter((s) => s.state === "loading" || s.state === "loaded" || s.state === "unloading");
    const models = active.map((s) => ({
      id: s.descriptor.id,
      engine: s.descriptor.engine,
      state: s.state,
      running: s.running,
      queued: s.queued,
      memory_bytes: memoryOf(s.descriptor),
      ...(s.runtime ? { runtime: s.runtime } : {}),
    }));
    const sum = (pick: (s: ModelStatus) => number) => all.reduce((n, s) => n + pick(s), 0);
    return {
      models,
      inflight: { requests: options.inflight(), running: sum((s) => s.running), queued: sum((s) => s.queued) },
      memory: {
        loaded_bytes: models.filter((m) => m.state === "loaded").reduce((n, m) => n + m.memory_bytes, 0),
        budget_bytes: options.memoryBudgetBytes > 0 ? options.memoryBudgetBytes : null,
      },
    };
  });

  app.get("/api/stats", async () => {
    const c = await options.counters();
    return {
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      requests_total: c?.requests ?? null,
      prompt_tokens_total: c?.promptTokens ?? null,
      completion_tokens_total: c?.completionTokens ?? null,
      inflight: options.inflight(),
    };
  });
}
