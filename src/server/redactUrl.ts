/** Query parameter names that carry credentials: `api_key`, `key`, `access_token`, `client_secret`, `password`, `auth`… */
const SECRET_NAME = /key|token|secret|passw|pwd|auth|credential|signature|session|cookie/i;

/**
 * A request URL fit for the log: the values of query parameters named like a credential become `[redacted]`
 * (a client that puts its API key in the query string is refused, and its key must not end up in the log either).
 * The path and the other parameters stay as sent.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const query = url.slice(q + 1);
  let changed = false;
  const parts = query.split("&").map((part) => {
    const eq = part.indexOf("=");
    const rawName = eq < 0 ? part : part.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, " "));
    } catch {
      name = rawName;
    }
    if (!SECRET_NAME.test(name) || eq < 0) return part;
    changed = true;
    return `${rawName}=[redacted]`;
  });
  return changed ? `${url.slice(0, q + 1)}${parts.join("&")}` : url;
}
