import type { FastifyInstance } from "fastify";

interface InflightTracker {
  readonly size: number;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
}

/**
 * Counts requests whose response has not closed yet (streams included). Shutdown uses it to know when the
 * drain is over: Node keeps a kept-alive connection open after its last response, so the server closes them itself.
 */
export function trackInflight(app: FastifyInstance): InflightTracker {
  let size = 0;
  let waiters: (() => void)[] = [];
  app.addHook("onRequest", async (_request, reply) => {
    size++;
    reply.raw.once("close", () => {
      size--;
      if (size === 0) {
        for (const w of waiters) w();
        waiters = [];
      }
    });
  });
  return {
    get size() {
      return size;
    },
    idle: () => (size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };
}
