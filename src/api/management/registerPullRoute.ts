import { relative, sep } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseHubSource } from "../../detection/hub/parseHubSource.js";
import { describeLocalModels } from "../../registry/ModelRegistry.js";
import type { ModelRouter } from "../../router/ModelRouter.js";
import { InvalidPullSourceError } from "../../store/errors.js";
import { pullModel, type PullResult } from "../../store/pullModel.js";
import { storeModelId } from "../../store/storeModelId.js";
import { toErrorEnvelope } from "../openai/errorEnvelope.js";
import { SseWriter } from "../openai/SseWriter.js";
import type { OriginInfo } from "./modelInfo.js";
import { parseStrictBody } from "./parseStrictBody.js";
import { PullProgress, type PullWireEvent } from "./PullProgress.js";

/** Store folder, hub URL and token, as `tabagent pull` reads them (storeSettings). */
export type StoreAccess = () => Promise<{ storeDir: string; hubUrl: string; accessToken: string | undefined }>;

interface PullRouteOptions {
  router: ModelRouter;
  origins: Map<string, OriginInfo>;
  store: StoreAccess;
  preHandler: (request: FastifyRequest) => Promise<void>;
  signalOf: (request: FastifyRequest, reply: FastifyReply) => AbortSignal;
  /** The model as GET /api/models lists it, once registered. */
  describe: (id: string) => object | null;
}

const pullBodySchema = z.object({
  source: z.string().min(1).max(1024),
  stream: z.boolean().optional(),
});

/**
 * Serves a pulled model at once, as discovery would have found it at the next start: the same id (storeModelId of
 * the snapshot-relative file) and origin `store`, so DELETE may remove it. An id already served is left as it is.
 */
async function registerPulled(result: PullResult, router: ModelRouter, origins: Map<string, OriginInfo>, signal: AbortSignal): Promise<string | null> {
  if (result.id === null) return null;
  const existing = router.registry.get(result.id);
  if (existing) return result.id;
  const found = await describeLocalModels(result.snapshotDir, { signal });
  for (const { descriptor, detection } of found) {
    if (detection.format === "unknown") continue;
    const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
    const id = storeModelId(result.repo, isGguf ? relative(result.snapshotDir, descriptor.path).split(sep).join("/") : null);
    if (id !== result.id) continue;
    router.registry.add({ id, ...descriptor });
    origins.set(id, {
      origin: "store",
      label: `${result.repo}@${result.commit.slice(0, 12)}`,
      store: { repo: result.repo, commit: result.commit, files: isGguf ? detection.files.map((f) => f.path) : null },
    });
    return id;
  }
  return null;
}

/**
 * `POST /api/models/pull`: `tabagent pull` over HTTP. The source is validated and the hub listing read before the
 * response starts, so those failures are ordinary HTTP errors; from the first `resolved` event on, progress streams
 * as SSE and a failure is one `error` event. Closing the connection stops the download (the partial file stays).
 */
export function registerPullRoute(app: FastifyInstance, options: PullRouteOptions): void {
  const { router, origins } = options;
  app.post("/api/models/pull", { preHandler: options.preHandler }, async (request, reply) => {
    const body = parseStrictBody(pullBodySchema, request.body);
    if (!parseHubSource(body.source)) {
      throw new InvalidPullSourceError(`'${body.source.slice(0, 200)}' is not a Hugging Face model: use owner/name[@revision][:file-or-quant]`);
    }
    const stream = body.stream ?? true;
    const settings = await options.store();
    const signal = options.signalOf(request, reply);
    const progress = new PullProgress();
    let writer: SseWriter | null = null;
    const emit = (event: PullWireEvent | Record<string, unknown>) => {
      if (!stream) return;
      if (!writer) {
        reply.hijack();
        writer = new SseWriter(reply.raw);
        writer.start({ "x-request-id": String(request.id) });
      }
      // Progress is throttled, so these few writes need no backpressure wait; their order is kept.
      void writer.send(event);
    };
    try {
      const result = await pullModel({ source: body.source, ...settings, signal, onEvent: (e) => progress.handle(e).forEach(emit) });
      const id = await registerPulled(result, router, origins, signal);
      request.log.info({ source: body.source, model: id, bytes: result.fetchedBytes, seconds: result.seconds }, "model pulled");
      const done = {
        type: "done",
        id,
        repo: result.repo,
        commit: result.commit,
        path: result.modelPath,
        fetched_bytes: result.fetchedBytes,
        resumed_bytes: result.resumedBytes,
        seconds: result.seconds,
        model: id === null ? null : options.describe(id),
      };
      if (!stream) return done;
      emit(done);
      (writer as SseWriter | null)?.end();
    } catch (err) {
      const open = writer as SseWriter | null;
      if (!open) throw err;
      if (!open.open) {
        request.log.debug({ source: body.source }, "pull stopped: the client left (the partial download is kept)");
      } else {
        const mapped = toErrorEnvelope(err);
        if (mapped.unexpected) request.log.error({ err }, "pull failed");
        else request.log.info({ source: body.source, code: mapped.body.error.code, reason: mapped.body.error.message }, "pull failed");
        await open.send({ type: "error", error: mapped.body.error });
        open.end();
      }
    }
    return reply;
  });
}
