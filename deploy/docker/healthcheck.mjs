#!/usr/bin/env node
// Container health check: GET /health on the daemon and exit 0 when it answers 200 with {"status":"ok"}, 1
// otherwise (Docker's HEALTHCHECK contract). Uses only Node itself: the image has no curl or wget.
//
//   node healthcheck.mjs [URL]
//
// URL defaults to $TABAGENT_HEALTHCHECK_URL, else http://127.0.0.1:${TABAGENT_PORT:-8471}/health (the daemon
// listens on 0.0.0.0 in the container, so loopback reaches it). When TABAGENT_API_KEYS is set, its first key is
// sent as a bearer token, so the check keeps working if /health ever requires authentication.
// TABAGENT_HEALTHCHECK_TIMEOUT_MS bounds the whole check (default 4000; keep it under HEALTHCHECK --timeout).

const env = process.env;
const port = env.TABAGENT_PORT && env.TABAGENT_PORT !== "0" ? env.TABAGENT_PORT : "8471";
const url = process.argv[2] || env.TABAGENT_HEALTHCHECK_URL || `http://127.0.0.1:${port}/health`;
const timeoutMs = Number(env.TABAGENT_HEALTHCHECK_TIMEOUT_MS) > 0 ? Number(env.TABAGENT_HEALTHCHECK_TIMEOUT_MS) : 4000;

const headers = { accept: "application/json" };
const key = (env.TABAGENT_API_KEYS ?? "")
  .split(",")
  .map((k) => k.trim())
  .find((k) => k.length > 0);
if (key) headers.authorization = `Bearer ${key}`;

function fail(message) {
  process.stderr.write(`healthcheck: ${url}: ${message}\n`);
  process.exit(1);
}

try {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) fail(`HTTP ${res.status} ${text.slice(0, 200)}`);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`not JSON: ${text.slice(0, 200)}`);
  }
  if (body?.status !== "ok") fail(`status is ${JSON.stringify(body?.status)}, not "ok"`);
  const models = Array.isArray(body.models) ? body.models.length : 0;
  process.stdout.write(`healthy: ${models} model(s), loaded: ${(body.loaded ?? []).join(", ") || "none"}\n`);
  process.exit(0);
} catch (err) {
  if (err?.name === "TimeoutError") fail(`no answer within ${timeoutMs} ms`);
  const cause = err?.cause;
  fail(cause ? `${err.message}: ${cause.code ?? cause.errors?.[0]?.code ?? cause.message}` : String(err?.message ?? err));
}
