import { TabAgentError } from "../core/errors.js";
import type { ExitInfo } from "./Spawner.js";

/**
 * How a child ended, in words: "exited with code 1", "was killed by SIGKILL", "could not be spawned (ENOENT)". Short
 * enough for a client: a spawn error's full message (it names paths) belongs in the log.
 */
export function describeExit(info: ExitInfo): string {
  if (info.error) return `could not be spawned${errorCode(info.error)}`;
  if (info.signal) return `was killed by ${info.signal}`;
  return `exited with code ${info.code ?? "unknown"}`;
}

/** ` (ENOENT)` for a system error, else nothing. */
export function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]*$/.test(code) ? ` (${code})` : "";
}

/** A failure and the child's last output, as the log and the local status show it (never a client). */
export function withOutput(summary: string, lines: readonly string[]): string {
  return lines.length === 0 ? summary : `${summary}. Last output:\n${lines.join("\n")}`;
}

/**
 * One start attempt failed: the child exited while starting, never became healthy before the deadline, or could not
 * be spawned. The message says what failed and how (it goes to HTTP clients, who may be remote); the child's last
 * output lines, which can hold anything (paths, environment, a token a library printed), stay in `lastLines` for
 * the log and the operator's status (`detail`).
 */
export class ProcessStartError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;
  readonly reason: string;
  readonly lastLines: readonly string[];
  /** The child said its port was taken (a race with another program after the free-port probe): try another port. */
  readonly portInUse: boolean;

  constructor(
    readonly processName: string,
    reason: string,
    lastLines: readonly string[],
    options: { portInUse?: boolean; cause?: unknown } = {},
  ) {
    const where = lastLines.length === 0 ? " (it wrote no output)" : "; its last output is in the daemon log";
    super(`The ${processName} process failed to start: it ${reason}${where}.`, {
      code: "engine_start_failed",
      cause: options.cause,
    });
    this.reason = reason;
    this.lastLines = lastLines;
    this.portInUse = options.portInUse ?? false;
  }

  /** The failure with the child's output, for the log and the local status. */
  get detail(): string {
    return withOutput(`The ${this.processName} process failed to start: it ${this.reason}`, this.lastLines);
  }
}

/**
 * Too many failures in a row: the process is paused for a cooldown; requests get 503 with Retry-After. `reason` is
 * the last failure without the child's output (that is in the log and the process status).
 */
export class ProcessFailedError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;

  constructor(
    readonly processName: string,
    readonly reason: string,
    readonly retryAfterMs: number,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(`The ${processName} process failed repeatedly and is paused; it will be retried in ${seconds} s. Last failure: ${reason}`, {
      code: "engine_failed",
      headers: { "retry-after": String(seconds) },
    });
  }
}

/** `stop()` (TTL unload or shutdown) cancelled a start that requests were waiting for. */
export class ProcessStoppedError extends TabAgentError {
  override readonly status = 503;
  override readonly type = "service_unavailable_error" as const;

  constructor(readonly processName: string) {
    super(`The ${processName} process was stopped while it was starting.`, { code: "engine_stopped" });
  }
}
