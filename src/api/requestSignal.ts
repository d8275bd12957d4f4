import type { FastifyReply, FastifyRequest } from "fastify";
import { AbortedError } from "../core/errors.js";

/** Aborts when the client goes away before the response is complete, or when shutdown's grace period ends. */
export function requestSignal(request: FastifyRequest, reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new AbortedError("The client closed the connection."));
  });
  return AbortSignal.any([controller.signal, shutdown]);
}
