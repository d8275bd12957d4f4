import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RouteNotFoundError } from "../../core/errors.js";
import { projectRoot } from "../../native/projectRoot.js";

/** The page and its two assets: served without a key (they hold no data; the page asks for one when needed). */
export const WEB_PATHS = ["/", "/web/app.js", "/web/app.css"] as const;

/**
 * Nothing but this origin: no inline script or style, no other host, no framing, no form posts elsewhere. `img-src
 * data:` is for the empty favicon (so the browser does not ask for /favicon.ico).
 */
export const WEB_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  type: string;
  raw: Buffer;
  gzip: Buffer;
  etag: string;
}

/** The assets live as files next to this module's source (src/server/web), which the package ships as they are. */
function loadAsset(name: string, type: string): Asset {
  const path = join(projectRoot(), "src", "server", "web", name);
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new Error(`the web page's ${name} is missing (${(err as NodeJS.ErrnoException).code ?? String(err)}): it ships in src/server/web, which an install must keep`, {
      cause: err,
    });
  }
  return { type, raw, gzip: gzipSync(raw, { level: 9 }), etag: `"${createHash("sha256").update(raw).digest("base64url").slice(0, 22)}"` };
}

function acceptsGzip(request: FastifyRequest): boolean {
  const accept = request.headers["accept-encoding"];
  return typeof accept === "string" && /\bgzip\b/.test(accept);
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset) {
  void reply.headers({
    "content-type": asset.type,
    "cache-control": "no-cache",
    etag: asset.etag,
    vary: "Accept-Encoding",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  if (request.headers["if-none-match"] === asset.etag) return reply.code(304).send();
  if (acceptsGzip(request)) return reply.header("content-encoding", "gzip").send(asset.gzip);
  return reply.send(asset.raw);
}

/**
 * `GET /`: the page for a browser (a request that accepts text/html), with a strict Content-Security-Policy; an
 * API client still gets the 404 envelope that points to /docs, /v1/models and /health. Same Host and Origin checks
 * as every route (registerSecurity runs first).
 */
export function registerWebPage(app: FastifyInstance): void {
  const page = loadAsset("index.html", "text/html; charset=utf-8");
  const script = loadAsset("app.js", "text/javascript; charset=utf-8");
  const style = loadAsset("app.css", "text/css; charset=utf-8");
  app.get("/", async (request, reply) => {
    const accept = request.headers.accept;
    if (typeof accept !== "string" || !accept.includes("text/html")) {
      throw new RouteNotFoundError(
        "This is tabagent's OpenAI-compatible API; its page at / is for browsers. See /docs for its routes, /v1/models for the models it serves, /health for its state.",
        { code: "unknown_route" },
      );
    }
    void reply.headers({ "content-security-policy": WEB_CSP, "x-frame-options": "DENY" });
    return send(request, reply, page);
  });
  app.get("/web/app.js", async (request, reply) => send(request, reply, script));
  app.get("/web/app.css", async (request, reply) => send(request, reply, style));
}
