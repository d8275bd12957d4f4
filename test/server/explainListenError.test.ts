import { describe, expect, it } from "vitest";
import { explainListenError } from "../../src/server/explainListenError.js";

const errno = (code: string) => Object.assign(new Error(`listen ${code}`), { code });
const answering = (status: number, body: unknown) => (async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch;
const silent = (async () => {
  throw new TypeError("fetch failed");
}) as unknown as typeof fetch;

describe("explainListenError", () => {
  it("a busy port held by a tabagent daemon: names it with its version, probed on loopback for a wildcard bind", async () => {
    let asked = "";
    const fetchImpl = (async (url: string) => {
      asked = url;
      return new Response(JSON.stringify({ status: "ok", version: "1.2.3", models: [], loaded: [], upstreams: [] }));
    }) as unknown as typeof fetch;
    const message = await explainListenError(errno("EADDRINUSE"), "0.0.0.0", 8471, fetchImpl);
    expect(asked).toBe("http://127.0.0.1:8471/health");
    expect(message).toBe(
      "cannot listen on 0.0.0.0:8471: the port is already in use; a tabagent daemon (version 1.2.3) already serves http://127.0.0.1:8471 " +
        "(its /health answered): use it, or stop it first. To run this one beside it, pick another port with --port N (or TABAGENT_PORT=N; --port 0 takes any free port).",
    );
  });

  it("a busy port held by something else, answering or not", async () => {
    expect(await explainListenError(errno("EADDRINUSE"), "::1", 80, answering(404, { detail: "no" }))).toMatch(
      /^cannot listen on \[::1\]:80: the port is already in use; something that is not a tabagent daemon answers HTTP there \(GET \/health: 404\)\. .*--port N/,
    );
    expect(await explainListenError(errno("EADDRINUSE"), "127.0.0.1", 8471, silent)).toMatch(/another program holds it \(nothing answered GET \/health\)/);
  });

  it("no permission: a privileged port says why; another says this user may not bind it", async () => {
    expect(await explainListenError(errno("EACCES"), "127.0.0.1", 80, silent)).toBe(
      "cannot listen on 127.0.0.1:80: permission denied (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability). Pick a port from 1024 up with --port N (or TABAGENT_PORT=N).",
    );
    expect(await explainListenError(errno("EACCES"), "127.0.0.1", 8471, silent)).toMatch(/permission denied \(this user may not bind it\)/);
  });

  it("an address that is not this machine's names --host; other errors are left alone (null)", async () => {
    expect(await explainListenError(errno("EADDRNOTAVAIL"), "10.9.9.9", 8471, silent)).toMatch(/10\.9\.9\.9 is not an address of this machine.*--host/);
    expect(await explainListenError(errno("EMFILE"), "127.0.0.1", 8471, silent)).toBeNull();
    expect(await explainListenError(new Error("boom"), "127.0.0.1", 8471, silent)).toBeNull();
  });
});
