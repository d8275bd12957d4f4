import type { FastifyRequest } from "fastify";

/** Status of the SSE error event a stream ended with, by request; a WeakMap, so nothing outlives the request. */
const failures = new WeakMap<FastifyRequest, number>();

/**
 * Records that a stream, already answered 200, ended with an SSE error event of this status (500 for an engine
 * failure, 503 when shutdown cut it, ...). The request metrics count the request under that status, not 200.
 */
export function setStreamFailure(request: FastifyRequest, status: number): void {
  failures.set(request, status);
}

/** The status recorded with `setStreamFailure`, or undefined for a stream that ended normally (or no stream). */
export function getStreamFailure(request: FastifyRequest): number | undefined {
  return failures.get(request);
}
