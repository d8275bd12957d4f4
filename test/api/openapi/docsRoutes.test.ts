import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpenApiDocument } from "../../../src/api/openapi/buildOpenApiDocument.js";
import { registerDocsRoutes } from "../../../src/api/openapi/registerDocsRoutes.js";

let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  app = Fastify();
  registerDocsRoutes(app, { version: "9.9.9" });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
afterAll(async () => {
  await app?.close();
});

describe("GET /openapi.json and GET /docs", () => {
  it("serves the document as JSON, the same bytes every time", async () => {
    const first = await fetch(`${url}/openapi.json`);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const text = await first.text();
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument({ version: "9.9.9" }))));
    expect(await (await fetch(`${url}/openapi.json`)).text()).toBe(text);
  });

  it("renders every operation, its parameters and request fields as HTML that loads nothing from anywhere", async () => {
    const res = await fetch(`${url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html>/);
    const doc = buildOpenApiDocument();
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(html).toContain(`<code>${path}</code>`);
      for (const op of Object.values(item)) expect(html).toContain(`id="op-${op.operationId}"`);
    }
    for (const name of Object.keys(doc.components.schemas)) expect(html).toContain(`id="schema-${name}"`);
    // The chat request's fields, a path parameter, and a nested response field.
    expect(html).toContain('<code>messages</code> <span class="req">required</span>');
    expect(html).toContain("<code>max_tokens</code>");
    expect(html).toMatch(/<code>id<\/code> <span class="req">required<\/span><\/td><td>path<\/td>/);
    expect(html).toContain("<code>choices[].message.content</code>");

    // No network: no scripts, stylesheets, images, frames or fonts; links only within the page or to /openapi.json.
    expect(html).not.toMatch(/<(script|link|img|iframe|object|embed|source|video|audio)\b/i);
    expect(html).not.toMatch(/https?:|\/\/[a-z]/i);
    expect(html).not.toMatch(/url\(|@import/i);
    for (const [, target] of html.matchAll(/\b(?:href|src|action)="([^"]*)"/g)) expect(target).toMatch(/^(#[\w-]+|openapi\.json)$/);
    // Every in-page link has its target.
    for (const [, id] of html.matchAll(/href="#([\w-]+)"/g)) expect(html).toContain(`id="${id}"`);
  });
});
