import { spawn } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { DaemonClient, type DaemonTarget } from "./DaemonClient.js";
import { HostError } from "./HostError.js";

export interface DaemonConnectorOptions {
  target: DaemonTarget;
  /** Start `tabagent serve` when no daemon answers (the config's `nativeHostAutoStart`). */
  autoStart: boolean;
  /** The command that starts the daemon: argv[0] and the rest (node, bin/tabagent, serve, --config FILE). */
  serveCommand: string[];
  /** The started daemon's output goes to `daemon.log` here, never to the host's stdout. */
  logDir: string;
  logger: Logger;
  /** How long a started daemon may take to answer /health. Default 60 s. */
  startTimeoutMs?: number;
}

async function healthy(target: DaemonTarget, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await fetch(`${target.url}/health`, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * The daemon the host relays to: checked once with /health, and started (once, shared by concurrent requests) when
 * none answers and the config allows it. A daemon that went away is looked for again on the next request.
 */
export class DaemonConnector {
  readonly #options: DaemonConnectorOptions;
  readonly #client: DaemonClient;
  #ready: Promise<void> | null = null;
  #starting: Promise<void> | null = null;

  constructor(options: DaemonConnectorOptions) {
    this.#options = options;
    this.#client = new DaemonClient(options.target);
  }

  async connect(signal: AbortSignal): Promise<DaemonClient> {
    this.#ready ??= this.#check(signal).catch((err: unknown) => {
      this.#ready = null;
      throw err;
    });
    await abortable(this.#ready, signal);
    return this.#client;
  }

  /** Forgets that the daemon answered, so the next request checks (and maybe starts) it again. */
  reset(): void {
    this.#ready = null;
  }

  async #check(signal: AbortSignal): Promise<void> {
    const { target, autoStart } = this.#options;
    if (await healthy(target, signal)) return;
    if (!autoStart) {
      throw new HostError(
        "daemon_unavailable",
        `no tabagent daemon answers at ${target.url}: start one with \`tabagent serve\`, or set nativeHostAutoStart: true in its config`,
      );
    }
    this.#starting ??= this.#start().finally(() => (this.#starting = null));
    await this.#starting;
  }

  async #start(): Promise<void> {
    const { serveCommand, logDir, logger, target } = this.#options;
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, "daemon.log");
    const fd = openSync(logFile, "a", 0o600);
    logger.info({ command: serveCommand, logFile }, "no daemon answered: starting one");
    // Its own session and no pipe to us: the daemon outlives the host, and nothing it prints reaches the browser.
    const child = spawn(serveCommand[0]!, serveCommand.slice(1), { detached: true, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const state: { exited: string | null } = { exited: null };
    child.once("exit", (code, sig) => (state.exited = sig ?? String(code)));
    child.once("error", (err) => (state.exited = err.message));
    child.unref();
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (await healthy(target, AbortSignal.timeout(2000))) return;
      if (state.exited !== null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // Another daemon may have won the data folder's lock and be answering now.
    if (await healthy(target, AbortSignal.timeout(2000))) return;
    throw new HostError(
      "daemon_unavailable",
      state.exited !== null
        ? `the daemon started for the browser exited (${state.exited}); see ${logFile}`
        : `the daemon started for the browser did not answer at ${target.url}; see ${logFile}`,
    );
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
