import { isIPv4, isIPv6 } from "node:net";
import { normalizeHostEntry } from "../../config/normalizeSecurityEntries.js";

/** The names a local server answers to by default, in the form a `Host` header carries them (without the port). */
const LOOPBACK_HOST_NAMES: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];

/** Strips brackets and lower-cases: `[::1]` → `::1`. */
function bare(host: string): string {
  const h = host.trim().toLowerCase();
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** `localhost`, 127.0.0.0/8, `::1` (any spelling) and IPv4-mapped 127.0.0.0/8: only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = bare(host);
  if (h === "localhost") return true;
  if (isIPv4(h)) return h.startsWith("127.");
  if (!isIPv6(h)) return false;
  const canonical = new URL(`http://[${h}]`).hostname; // [::1], [::ffff:7f00:1]
  if (canonical === "[::1]") return true;
  const mapped = /^\[::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}\]$/.exec(canonical);
  return mapped !== null && mapped[1] !== undefined && Number.parseInt(mapped[1], 16) >> 8 === 127;
}

/** `0.0.0.0`, `::` and their spellings: every interface. */
export function isWildcardHost(host: string): boolean {
  const h = bare(host);
  if (isIPv4(h)) return h === "0.0.0.0";
  return isIPv6(h) && new URL(`http://[${h}]`).hostname === "[::]";
}

interface HostPolicy {
  /** True when the check is off (`*`). */
  readonly allowsAll: boolean;
  /** The names accepted besides 127.0.0.0/8 literals, normalized (for the startup log). */
  readonly names: readonly string[];
  /** Whether a raw `Host` header value (`name[:port]`) names this server. */
  allows(hostHeader: string | undefined): boolean;
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/**
 * The DNS-rebinding defence: a page on `http://evil.example` whose name is re-pointed at 127.0.0.1 reaches this
 * server with `Host: evil.example`, so only the names below are answered. Loopback names and literals, the bind
 * address when it is not a wildcard, and `extra` (already normalized by the config schema, or raw; both work).
 */
export function createHostPolicy(bindHost: string, extra: readonly string[]): HostPolicy {
  const names = new Set(LOOPBACK_HOST_NAMES);
  const entries = isWildcardHost(bindHost) ? extra : [bindHost, ...extra];
  let allowsAll = false;
  for (const entry of entries) {
    const n = normalizeHostEntry(entry);
    if (n === "*") allowsAll = true;
    else if (n !== null) names.add(n);
  }
  return {
    allowsAll,
    names: [...names],
    allows(hostHeader) {
      if (allowsAll) return true;
      if (hostHeader === undefined || hostHeader === "") return false;
      let name: string;
      if (hostHeader.charCodeAt(0) === 91 /* [ */) {
        const end = hostHeader.indexOf("]");
        if (end < 0) return false;
        name = hostHeader.slice(0, end + 1);
      } else {
        const colon = hostHeader.indexOf(":");
        name = colon < 0 ? hostHeader : hostHeader.slice(0, colon);
      }
      name = name.toLowerCase();
      return names.has(name) || (LOOPBACK_V4.test(name) && isIPv4(name));
    },
  };
}
