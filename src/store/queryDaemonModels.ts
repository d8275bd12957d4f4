import { z } from "zod";
import type { Config } from "../config/configSchema.js";

const listSchema = z.object({ data: z.array(z.object({ id: z.string(), tabagent: z.object({ state: z.string().optional() }).passthrough().optional() }).passthrough()) });

/**
 * Model states from a running daemon (`GET /v1/models` at the config's host and port, or `url`), so `ls` can show
 * what is loaded and `rm` can refuse a loaded model. Null when no daemon answers within the timeout.
 */
export async function queryDaemonModels(config: Config, options: { url?: string; timeoutMs?: number; fetch?: typeof fetch } = {}): Promise<Map<string, string> | null> {
  const host = config.host === "0.0.0.0" ? "127.0.0.1" : config.host === "::" ? "::1" : config.host;
  const base = options.url ?? `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
  const key = config.apiKeys[0];
  try {
    const res = await (options.fetch ?? fetch)(`${base.replace(/\/+$/, "")}/v1/models`, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
      signal: AbortSignal.timeout(options.timeoutMs ?? 1500),
    });
    if (!res.ok) return null;
    const parsed = listSchema.safeParse(await res.json());
    if (!parsed.success) return null;
    return new Map(parsed.data.data.map((m) => [m.id, m.tabagent?.state ?? "unknown"]));
  } catch {
    return null;
  }
}
