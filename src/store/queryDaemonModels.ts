import { z } from "zod";
import type { Config } from "../config/configSchema.js";

const listSchema = z.object({
  data: z.array(
    z
      .object({
        id: z.string(),
        tabagent: z
          .object({
            state: z.string().optional(),
            format: z.string().optional(),
            task: z.string().optional(),
            engine: z.string().nullable().optional(),
            size_bytes: z.number().optional(),
            upstream: z.string().optional(),
            alias_of: z.string().optional(),
          })
          .passthrough()
          .optional(),
      })
      .passthrough(),
  ),
});

/** A model as a running daemon lists it (`GET /v1/models`). */
export interface DaemonModel {
  id: string;
  state: string;
  format: string | null;
  task: string | null;
  engine: string | null;
  sizeBytes: number | null;
  /** The upstream server it lives on, for an upstream model. */
  upstream: string | null;
  /** The model id an alias stands for. */
  aliasOf: string | null;
}

/** What a running daemon serves, or why none answered at `url`. */
export type DaemonListing = { ok: true; url: string; models: DaemonModel[] } | { ok: false; url: string; reason: string };

/** The daemon the CLI talks to: `url`, else the config's host and port (a wildcard bind is reached on loopback). */
export function daemonUrl(config: Config, url?: string): string {
  if (url) return url.replace(/\/+$/, "");
  const host = config.host === "0.0.0.0" ? "127.0.0.1" : config.host === "::" ? "::1" : config.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
}

/**
 * The models a running daemon serves (`GET /v1/models` at `url`, default the config's address, with the config's
 * first API key), or why that failed: nothing listening, a timeout (1.5 s by default), an HTTP error, or an answer
 * that is not a TabAgent model list.
 */
export async function fetchDaemonModels(config: Config, options: { url?: string; timeoutMs?: number; fetch?: typeof fetch } = {}): Promise<DaemonListing> {
  const url = daemonUrl(config, options.url);
  const key = config.apiKeys[0];
  const timeoutMs = options.timeoutMs ?? 1500;
  let res: Response;
  try {
    res = await (options.fetch ?? fetch)(`${url}/v1/models`, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const reason =
      e.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : e.cause?.code === "ECONNREFUSED"
          ? "nothing is listening there"
          : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, url, reason };
  }
  if (res.status === 401) return { ok: false, url, reason: "it wants an API key (set TABAGENT_API_KEYS or apiKeys in the config)" };
  if (!res.ok) return { ok: false, url, reason: `GET /v1/models answered ${res.status}` };
  const parsed = listSchema.safeParse(await res.json().catch(() => null));
  if (!parsed.success) return { ok: false, url, reason: "its GET /v1/models is not a model list" };
  const models = parsed.data.data.map((m) => ({
    id: m.id,
    state: m.tabagent?.state ?? "unknown",
    format: m.tabagent?.format ?? null,
    task: m.tabagent?.task ?? null,
    engine: m.tabagent?.engine ?? null,
    sizeBytes: m.tabagent?.size_bytes ?? null,
    upstream: m.tabagent?.upstream ?? null,
    aliasOf: m.tabagent?.alias_of ?? null,
  }));
  return { ok: true, url, models };
}

/**
 * Model states from a running daemon (see fetchDaemonModels), so `rm` can refuse a loaded model. Null when no
 * daemon answers within the timeout.
 */
export async function queryDaemonModels(config: Config, options: { url?: string; timeoutMs?: number; fetch?: typeof fetch } = {}): Promise<Map<string, string> | null> {
  const listing = await fetchDaemonModels(config, options);
  return listing.ok ? new Map(listing.models.map((m) => [m.id, m.state])) : null;
}
