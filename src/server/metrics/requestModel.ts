import type { FastifyRequest } from "fastify";

/** The model a request was for, set by the handler once it knows it; a WeakMap, so nothing outlives the request. */
const models = new WeakMap<FastifyRequest, string>();

/**
 * Records which model a request is for (the body's `model` after validation, or a path parameter). The request
 * metrics read it when the response ends; an id that is not served is recorded as `model="unknown"` there.
 */
export function setRequestModel(request: FastifyRequest, id: string): void {
  models.set(request, id);
}

/**
 * The model set with `setRequestModel`; otherwise the parsed JSON body's `model` when it is a non-empty string;
 * otherwise undefined.
 */
export function getRequestModel(request: FastifyRequest): string | undefined {
  const set = models.get(request);
  if (set !== undefined) return set;
  const body = request.body;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const model = (body as { model?: unknown }).model;
    if (typeof model === "string" && model !== "") return model;
  }
  return undefined;
}
