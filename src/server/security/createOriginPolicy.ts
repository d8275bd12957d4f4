import { normalizeOrigin } from "../../config/normalizeSecurityEntries.js";

interface OriginPolicy {
  /** False when no origin is configured: CORS is off and responses carry no CORS headers. */
  readonly enabled: boolean;
  /** Whether a browser page or extension with this `Origin` may read responses. */
  allows(origin: string): boolean;
}

/**
 * Which origins may call the API from a browser. Exact origins match themselves (case-insensitively); `*` matches
 * every http(s) origin but never an extension (`chrome-extension://…`, `moz-extension://…`), `null` or `file://`
 * origin: those must be listed one by one.
 */
export function createOriginPolicy(configured: readonly string[]): OriginPolicy {
  const exact = new Set<string>();
  let anyWeb = false;
  for (const entry of configured) {
    const n = normalizeOrigin(entry);
    if (n === "*") anyWeb = true;
    else if (n !== null) exact.add(n.toLowerCase());
  }
  const enabled = anyWeb || exact.size > 0;
  return {
    enabled,
    allows(origin) {
      if (!enabled) return false;
      const o = origin.toLowerCase();
      if (exact.has(o)) return true;
      return anyWeb && (o.startsWith("https://") || o.startsWith("http://"));
    },
  };
}
