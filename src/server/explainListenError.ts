/** How long the check of whoever holds a busy port may take: the message must not keep a failing start waiting. */
const PROBE_TIMEOUT_MS = 1_000;

/** `host:port` as a URL's authority: IPv6 addresses in brackets; a wildcard bind probed on loopback. */
function probeBase(host: string, port: number): string {
  const shown = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}`;
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What answers `GET /health` on the busy port: a tabagent daemon (its version when /health shows it), something else, or nothing. */
async function whoAnswers(
  base: string,
  fetchImpl: typeof fetch,
): Promise<{ kind: "tabagent"; version: string | null } | { kind: "http"; status: number } | { kind: "none" }> {
  // A timer that holds the process open (AbortSignal.timeout's does not): with nothing else left to wait for, a
  // stalled fetch would otherwise end the process before the message is written.
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("no answer in time")), PROBE_TIMEOUT_MS);
  try {
    const res = await fetchImpl(`${base}/health`, { signal: controller.signal, redirect: "manual" });
    const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
    // /health's shape: status "ok", then the models, the loaded ones and the upstreams.
    if (res.ok && body && body.status === "ok" && Array.isArray(body.models) && Array.isArray(body.loaded) && Array.isArray(body.upstreams)) {
      return { kind: "tabagent", version: typeof body.version === "string" ? body.version : null };
    }
    return { kind: "http", status: res.status };
  } catch {
    return { kind: "none" };
  } finally {
    clearTimeout(timer);
  }
}

const PICK_ANOTHER = "To run this one beside it, pick another port with --port N (or TABAGENT_PORT=N; --port 0 takes any free port).";

/**
 * The message for a daemon that could not bind its address, or null for an error that is not about the address.
 * A busy port is checked for a tabagent daemon already serving there (its `/health`, within a second).
 */
export async function explainListenError(err: unknown, host: string, port: number, fetchImpl: typeof fetch = fetch): Promise<string | null> {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = hostPort(host, port);
  if (code === "EADDRINUSE") {
    const base = probeBase(host, port);
    const found = await whoAnswers(base, fetchImpl);
    const who =
      found.kind === "tabagent"
        ? `a tabagent daemon${found.version ? ` (version ${found.version})` : ""} already serves ${base} (its /health answered): use it, or stop it first.`
        : found.kind === "http"
          ? `something that is not a tabagent daemon answers HTTP there (GET /health: ${found.status}).`
          : "another program holds it (nothing answered GET /health).";
    return `cannot listen on ${where}: the port is already in use; ${who} ${PICK_ANOTHER}`;
  }
  if (code === "EACCES") {
    const why = port > 0 && port < 1024 ? "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability" : "this user may not bind it";
    return `cannot listen on ${where}: permission denied (${why}). Pick a port from 1024 up with --port N (or TABAGENT_PORT=N).`;
  }
  if (code === "EADDRNOTAVAIL") {
    return `cannot listen on ${where}: ${host} is not an address of this machine. Pick one of its addresses with --host (or TABAGENT_HOST; 127.0.0.1 for this machine only, 0.0.0.0 for all).`;
  }
  return null;
}
