import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { toErrorEnvelope } from "../openai/errorEnvelope.js";
import { SseWriter } from "../openai/SseWriter.js";
import type { ManagementStore } from "./ManagementStore.js";
import { parseStrictBody } from "./parseStrictBody.js";
import { PullProgress, type PullWireEvent } from "./PullProgress.js";

interface PullRouteOptions {
  store: ManagementStore;
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
 * `POST /api/models/pull`: `tabagent pull` over HTTP. The source is validated and the hub listing read before the
 * response starts, so those failures are ordinary HTTP errors; from the first `resolved` event on, progress streams
 * as SSE and a failure is one `error` event. Closing the connection stops the download (the partial file stays).
 */
export function registerPullRoute(app: FastifyInstance, options: PullRouteOptions): void {
  app.post("/api/models/pull", { preHandler: options.preHandler }, async (request, reply) => {
    const body = parseStrictBody(pullBodySchema, request.body);
    options.store.checkSource(body.source);
    const stream = body.stream ?? true;
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
      const result = await options.store.pull(body.source, signal, (e) => progress.handle(e).forEach(emit));
      const id = result.id;
      request.log.info({ source: body.source, model: id, bytes: result.fetchedBytes, seconds: result.seconds }, "model pulled");
      const done = {
        type: "done",
        id,
        repo: result.repo,
        commit: result.commit,
        path: result.path,
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
