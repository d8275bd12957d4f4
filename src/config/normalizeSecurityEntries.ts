import { isIPv6 } from "node:net";

/**
 * Canonical form of a host name or IP literal, as browsers put it in a `Host` header (lower case, IPv6 in brackets
 * and compressed, IDN as punycode); a port is dropped (entries match any port). `*` stays `*`. Null: not a host.
 */
export function normalizeHostEntry(value: string): string | null {
  let v = value.trim();
  if (v === "*") return "*";
  if (v === "" || /[\s/?#@\\]/.test(v)) return null;
  if (isIPv6(v)) v = `[${v}]`;
  try {
    const url = new URL(`http://${v}`);
    return url.hostname === "" ? null : url.hostname;
  } catch {
    return null;
  }
}

/**
 * Canonical form of a configured CORS origin: `scheme://host[:port]`, lower case, no path, default ports dropped for
 * http(s) (as browsers serialize the `Origin` header). `*` stays `*`. Null: not an origin.
 */
export function normalizeOrigin(value: string): string | null {
  const v = value.trim();
  if (v === "*") return "*";
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#@\s\\]+)\/?$/i.exec(v);
  if (!m || m[1] === undefined || m[2] === undefined) return null;
  const scheme = m[1].toLowerCase();
  if (scheme === "http" || scheme === "https") {
    try {
      const origin = new URL(v).origin;
      return origin === "null" ? null : origin;
    } catch {
      return null;
    }
  }
  if (scheme === "file") return null;
  return `${scheme}://${m[2].toLowerCase()}`;
}
