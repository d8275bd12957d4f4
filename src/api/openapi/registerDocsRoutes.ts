import type { FastifyInstance } from "fastify";
import { buildOpenApiDocument, type OpenApiOptions } from "./buildOpenApiDocument.js";
import { renderDocsPage } from "./renderDocsPage.js";

/** The page may load nothing from anywhere (it has no script; its style is inline). */
const DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * `GET /openapi.json` and `GET /docs`. The document is built at the first request to either (not at startup, which
 * stays fast) and both bodies are kept, so later requests only send bytes.
 */
export function registerDocsRoutes(app: FastifyInstance, options: OpenApiOptions = {}): void {
  let cached: { json: string; html: string } | null = null;
  const bodies = () => {
    if (!cached) {
      const doc = buildOpenApiDocument(options);
      cached = { json: JSON.stringify(doc), html: renderDocsPage(doc) };
    }
    return cached;
  };
  app.get("/openapi.json", async (_request, reply) => reply.type("application/json; charset=utf-8").send(bodies().json));
  app.get("/docs", async (_request, reply) => reply.type("text/html; charset=utf-8").header("content-security-policy", DOCS_CSP).send(bodies().html));
}
