import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { findFreePort } from "../../supervisor/findFreePort.js";

/** sun_path holds 108 bytes on Linux and 104 on macOS and the BSDs, the terminating NUL included. */
const MAX_SOCKET_PATH = 100;
const SOCKET_NAME = "child.sock";

/**
 * Where one start of a supervised child listens, and the key it requires. A Unix socket in a directory of its own
 * (mode 0700, so only the daemon's user can connect), or, where Node has no Unix sockets (Windows: named pipes
 * instead), a TCP port on 127.0.0.1; either way the child answers only requests that carry `key`, a fresh random
 * value given to it in its environment (never on its command line, which `ps` shows).
 *
 * The keep-alive agent for requests to this child lives and dies with it: `close` destroys it and removes the
 * directory. The key never appears in logs: JSON and `util.inspect` show only the address.
 */
export class ChildEndpoint {
  /** Connections to this child only: kept alive unless `keepAlive: false` was asked for (see `create`). */
  readonly agent: Agent;
  private closed = false;

  private constructor(
    /** The Unix socket, or null on TCP. */
    readonly socketPath: string | null,
    /** The 127.0.0.1 port, or null on a Unix socket. */
    readonly port: number | null,
    /** The directory that holds the socket (removed by `close`), or null on TCP. */
    readonly dir: string | null,
    /** Sent as `Authorization: Bearer <key>`; 32 random bytes, hex. */
    readonly key: string,
    keepAlive = true,
  ) {
    this.agent = new Agent({ keepAlive });
  }

  /**
   * A new endpoint: a Unix socket in a fresh private directory under `base` (default: the OS temp folder, or `/tmp`
   * when that path is too long for a socket), or a free TCP port when `transport` is `tcp`. `keepAlive: false` (TCP
   * only) opens a connection per request: for a server that leaves Nagle on (BitNet's llama-server), a kept-alive
   * connection meets the client's delayed ACKs and stalls 40 ms at the end of each answer; a fresh one does not.
   */
  static async create(options: { transport?: "unix" | "tcp"; base?: string; keepAlive?: boolean } = {}): Promise<ChildEndpoint> {
    const key = randomBytes(32).toString("hex");
    if ((options.transport ?? defaultTransport()) === "tcp") return new ChildEndpoint(null, await findFreePort("127.0.0.1"), null, key, options.keepAlive);
    let base = options.base ?? tmpdir();
    // mkdtemp adds 6 characters to the prefix.
    if (Buffer.byteLength(join(base, "tabagent-XXXXXX", SOCKET_NAME)) > MAX_SOCKET_PATH) base = "/tmp";
    const dir = await mkdtemp(join(base, "tabagent-"));
    await chmod(dir, 0o700); // mkdtemp creates 0700 already; a umask never widens it, but say it anyway
    return new ChildEndpoint(join(dir, SOCKET_NAME), null, dir, key, options.keepAlive);
  }

  /** The base URL the daemon sends to: on a socket, the host part only names it (`Host: localhost`). */
  get baseUrl(): string {
    return this.socketPath !== null ? "http://localhost/v1" : `http://127.0.0.1:${this.port}/v1`;
  }

  /** The `Host` header the daemon sends; the Python sidecar refuses any other. */
  get hostHeader(): string {
    return this.socketPath !== null ? "localhost" : `127.0.0.1:${this.port}`;
  }

  /** For status and logs. */
  toString(): string {
    return this.socketPath !== null ? `unix:${this.socketPath}` : `127.0.0.1:${this.port}`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return `ChildEndpoint(${this.toString()})`;
  }

  /** Destroys the agent's connections and removes the socket's directory. Idempotent; never rejects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
    if (this.dir !== null) await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  /**
   * A health check for ManagedProcess: `GET path` answers 200. Sent with the key (llama-server leaves /health open,
   * the sidecar does not) on a connection of its own, not the agent's: no idle socket is kept to a child that may
   * be about to be killed.
   */
  static healthCheck(path = "/health"): (endpoint: ChildEndpoint, signal: AbortSignal) => Promise<boolean> {
    return (endpoint, signal) =>
      new Promise<boolean>((resolve) => {
        if (signal.aborted) {
          resolve(false);
          return;
        }
        const where = endpoint.socketPath !== null ? { socketPath: endpoint.socketPath } : { host: "127.0.0.1", port: endpoint.port! };
        const req = request(
          { ...where, path, method: "GET", agent: false, signal, headers: { host: endpoint.hostHeader, authorization: `Bearer ${endpoint.key}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode === 200);
          },
        );
        req.once("error", () => resolve(false));
        req.end();
      });
  }
}

/** Unix sockets everywhere but Windows (where Node's `socketPath` means a named pipe). */
export function defaultTransport(platform: NodeJS.Platform = process.platform): "unix" | "tcp" {
  return platform === "win32" ? "tcp" : "unix";
}
