import type { FastifyRequest } from "fastify";

/** Requests that may see deployment details; a WeakSet, so nothing outlives the request. */
const trusted = new WeakSet<FastifyRequest>();

/** Marks a request as coming from a caller who may see internals (registerSecurity decides who). */
export function markTrusted(request: FastifyRequest): void {
  trusted.add(request);
}

/**
 * Whether the caller may see deployment details (upstream base URLs and their errors on `/health`): it presented a
 * configured API key, or no key is configured and the server listens on loopback only. An app without
 * registerSecurity trusts nobody.
 */
export function isTrusted(request: FastifyRequest): boolean {
  return trusted.has(request);
}
