import type { Logger } from "pino";
import { HUB_SOURCE_PATH_PREFIX, type Config, type ModelEntry } from "../config/configSchema.js";
import type { ModelDescriptor } from "../core/types.js";
import { modelFormatSchema, type Detection } from "../core/detectionSchema.js";
import { describeLocalModels, engineOptionsOf, type ModelRegistry } from "../registry/ModelRegistry.js";
import type { ModelRouter, PendingModel } from "../router/ModelRouter.js";
import { formatBytes } from "./formatBytes.js";
import { pullModel, type PullEvent } from "./pullModel.js";
import { resolveStoredSource } from "./resolveStoredSource.js";
import { storeSettings } from "./storeSettings.js";

interface ConfiguredPulls {
  /** Ids of models pulled in the background (already-stored ones are registered before this resolves). */
  pulling: string[];
  /** Resolves when every background pull has finished (or failed). */
  settled: Promise<void>;
  /** Aborts the pulls in progress (their partial files stay, for the next start). */
  stop(): Promise<void>;
}

function placeholder(id: string, source: string, format: string, quant: string | null, totalBytes: number): ModelDescriptor {
  const f = modelFormatSchema.safeParse(format);
  const detection: Detection = {
    source,
    format: f.success ? f.data : "unknown",
    task: "unknown",
    reason: "downloading from the hub",
    architecture: null,
    parameterCount: null,
    quantization: quant,
    contextLength: null,
    hasChatTemplate: false,
    files: [],
    engine: null,
    alternatives: [],
    warnings: [],
    details: {},
  };
  return { id, path: `${HUB_SOURCE_PATH_PREFIX}${source}`, task: "unknown", engine: null, detection, sizeBytes: totalBytes, created: Math.floor(Date.now() / 1000) };
}

/**
 * Models the config names by hub source (`source: owner/name:file`): the ones already in the store are registered
 * at once (no network); the others are pulled in the background, shown in /v1/models as `downloading`, answered
 * with 503 + Retry-After until they are ready, and then registered (and preloaded if asked). Progress goes to the log.
 */
export async function startConfiguredPulls(options: {
  config: Config;
  env: NodeJS.ProcessEnv;
  registry: ModelRegistry;
  router: ModelRouter;
  logger: Logger;
  fetch?: typeof fetch;
  /** Log a progress line at most this often; default 5 s. */
  logIntervalMs?: number;
}): Promise<ConfiguredPulls> {
  const { config, registry, router, logger } = options;
  const entries = config.models.filter((m) => m.path.startsWith(HUB_SOURCE_PATH_PREFIX) && m.source);
  const controller = new AbortController();
  const pulling: string[] = [];
  const jobs: Promise<void>[] = [];
  if (entries.length === 0) return { pulling, settled: Promise.resolve(), stop: async () => undefined };
  const settings = await storeSettings(config, options.env);
  const preload = new Set(config.preload);

  const register = async (entry: ModelEntry, id: string, modelPath: string) => {
    const found = await describeLocalModels(modelPath, { engine: entry.engine, signal: controller.signal });
    const first = found[0];
    if (!first || first.detection.format === "unknown") throw new Error(`${modelPath} holds no model`);
    const extra = engineOptionsOf(entry);
    registry.add({ id, ...first.descriptor, ...(extra ? { engineOptions: extra } : {}) });
  };

  for (const entry of entries) {
    const id = entry.id!;
    const source = entry.source!;
    const stored = await resolveStoredSource(settings.storeDir, source).catch(() => null);
    if (stored) {
      await register(entry, id, stored.modelPath);
      logger.info({ model: id, source, path: stored.modelPath }, "model from the store");
      continue;
    }
    pulling.push(id);
    const log = logger.child({ model: id, source });
    const state: PendingModel = {
      descriptor: placeholder(id, source, "unknown", null, 0),
      state: "downloading",
      doneBytes: 0,
      totalBytes: 0,
      bytesPerSecond: null,
      error: null,
    };
    router.setPending(id, state);
    const started = Date.now();
    let lastLog = 0;
    const onEvent = (e: PullEvent) => {
      if (e.type === "resolved") {
        state.totalBytes = e.totalBytes;
        state.doneBytes = e.files.filter((f) => f.present).reduce((n, f) => n + f.size, 0);
        state.descriptor = placeholder(id, source, e.format, e.quant, e.totalBytes);
        log.info({ commit: e.commit, files: e.files.length, bytes: e.totalBytes }, `downloading ${formatBytes(e.totalBytes)}`);
      } else if (e.type === "file-start" && e.resumeFrom > 0) {
        state.doneBytes += e.resumeFrom;
        log.info({ file: e.path, resumeFrom: e.resumeFrom }, "resuming an earlier download");
      } else if (e.type === "progress") {
        state.doneBytes += e.bytes;
        const now = Date.now();
        state.bytesPerSecond = (state.doneBytes * 1000) / Math.max(1, now - started);
        if (now - lastLog >= (options.logIntervalMs ?? 5000)) {
          lastLog = now;
          const pct = state.totalBytes > 0 ? Math.floor((state.doneBytes / state.totalBytes) * 100) : 0;
          log.info({ done: state.doneBytes, total: state.totalBytes, percent: pct }, `downloading: ${pct}% of ${formatBytes(state.totalBytes)}`);
        }
      } else if (e.type === "retry") {
        log.warn({ file: e.path, attempt: e.attempt, err: e.error }, "download interrupted; resuming");
      }
    };
    jobs.push(
      (async () => {
        try {
          const result = await pullModel({ source, ...settings, fetch: options.fetch, signal: controller.signal, onEvent });
          await register(entry, id, result.modelPath);
          router.finishPending(id);
          log.info({ path: result.modelPath, seconds: result.seconds, bytes: result.fetchedBytes }, "model downloaded");
          if (entry.preload || preload.has(id)) await router.preload([id], controller.signal);
        } catch (err) {
          if (controller.signal.aborted) {
            router.finishPending(id);
            return;
          }
          state.state = "download-failed";
          state.error = (err as Error).message;
          log.error({ err: state.error }, "download failed");
        }
      })(),
    );
  }
  const settled = Promise.all(jobs).then(() => undefined);
  return {
    pulling,
    settled,
    stop: async () => {
      controller.abort(new Error("the daemon is shutting down"));
      await settled;
    },
  };
}
