import Fastify, { type FastifyInstance } from "fastify";
import { request as httpRequest } from "node:http";
import { toErrorEnvelope } from "../../../src/api/openai/errorEnvelope.js";
import { SseWriter } from "../../../src/api/openai/SseWriter.js";
import { RouteNotFoundError } from "../../../src/core/errors.js";
import { registerSecurity, type SecurityOptions, type SecuritySummary } from "../../../src/server/security/registerSecurity.js";

export interface SecurityTestApp {
  app: FastifyInstance;
  url: string;
  port: number;
  summary: SecuritySummary | null;
  close(): Promise<void>;
}

/**
 * A small app shaped like buildApp (request-id hook, the one error handler through toErrorEnvelope, a throwing
 * not-found handler, ignoreTrailingSlash), with `/health`, `/v1/models` and a streaming `/v1/chat/completions`
 * written by the real SseWriter on a hijacked reply. `security: null` builds it without the layer (benchmark baseline).
 */
export async function startSecurityTestApp(
  security: Partial<SecurityOptions> | null,
  { listen = true, logStream }: { listen?: boolean; logStream?: NodeJS.WritableStream } = {},
): Promise<SecurityTestApp> {
  const app = Fastify({
    routerOptions: { ignoreTrailingSlash: true },
    ...(logStream ? { logger: { level: "trace", stream: logStream } } : {}),
  }) as unknown as FastifyInstance;
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  app.setErrorHandler(async (err, request, reply) => {
    const mapped = toErrorEnvelope(err);
    // As buildApp logs refusals.
    request.log.info({ status: mapped.status, code: mapped.body.error.code, reason: mapped.body.error.message }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    return reply.code(mapped.status).headers(mapped.headers).send(mapped.body);
  });
  app.setNotFoundHandler(async (request) => {
    throw new RouteNotFoundError(`Unknown route: ${request.method} ${request.url.split("?")[0]}`, { code: "unknown_route" });
  });
  app.get("/health", async () => ({ status: "ok" }));
  app.get("/ready", async () => ({ status: "ready" }));
  app.get("/v1/models", async () => ({ object: "list", data: [{ id: "tiny-chat", object: "model", created: 0, owned_by: "tabagent" }] }));
  app.post("/v1/chat/completions", async (request, reply) => {
    const body = request.body as { stream?: boolean };
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      created: 0,
      model: "tiny-chat",
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    if (!body.stream) {
      return {
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 0,
        model: "tiny-chat",
        choices: [{ index: 0, message: { role: "assistant", content: "Hi there" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      };
    }
    reply.hijack();
    const writer = new SseWriter(reply.raw);
    writer.start({ "x-request-id": String(request.id) });
    await writer.send(chunk({ role: "assistant", content: "" }, null));
    await writer.send(chunk({ content: "Hi" }, null));
    await writer.send(chunk({ content: " there" }, null));
    await writer.send(chunk({}, "stop"));
    await writer.done();
  });
  const summary = security === null ? null : registerSecurity(app, { apiKeys: [], allowedHosts: [], corsOrigins: [], bindHost: "127.0.0.1", ...security });
  if (!listen) {
    await app.ready();
    return { app, url: "", port: 0, summary, close: () => app.close() };
  }
  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { app, url: `http://127.0.0.1:${port}`, port, summary, close: () => app.close() };
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown>;
}

/** A request with any headers, `Host` included (fetch refuses to set it). */
export function rawRequest(port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path, headers: options.headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        let json: unknown = null;
        try {
          json = JSON.parse(body);
        } catch {
          /* empty or SSE */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: json as RawResponse["json"] });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}
