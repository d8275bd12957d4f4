import { isLoopbackHost } from "./createHostPolicy.js";

interface BindSafetyInput {
  /** The address the server will listen on (config `host`). */
  host: string;
  /** The resolved keys (resolveApiKeys), not just config.apiKeys: a key file counts. */
  apiKeys: readonly string[];
  insecureNoAuth: boolean;
}

type BindSafety = { ok: true; warning?: string } | { ok: false; message: string };

/**
 * Whether the server may listen on `host`. Loopback (127.0.0.0/8, ::1, localhost) is always fine. Anything else,
 * the wildcards 0.0.0.0 and :: included, lets other machines in, so it needs an API key, or `--insecure-no-auth`
 * (which starts, with a warning to log).
 */
export function checkBindSafety({ host, apiKeys, insecureNoAuth }: BindSafetyInput): BindSafety {
  if (isLoopbackHost(host) || apiKeys.length > 0) return { ok: true };
  if (insecureNoAuth) {
    return {
      ok: true,
      warning: `Listening on ${host} without an API key (--insecure-no-auth): anyone who can reach this port can use every model. Set --api-key or --api-key-file to require one.`,
    };
  }
  return {
    ok: false,
    message: `refusing to listen on ${host} without an API key: other machines could use every model. Set one with --api-key, --api-key-file, TABAGENT_API_KEYS or TABAGENT_API_KEY_FILE; bind 127.0.0.1 to stay local; or pass --insecure-no-auth to accept the risk.`,
  };
}
