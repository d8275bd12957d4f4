import { TabAgentError } from "../core/errors.js";
import type { ExitInfo } from "./Spawner.js";

/** How a child ended, in words: "exited with code 1", "was killed by SIGKILL", "could not be spawned: ...". */
export function describeExit(info: ExitInfo): string {
  if (info.error) return `could not be spawned: ${info.error.message}`;
  if (info.signal) return `was killed by ${info.signal}`;
  return `exited with code ${info.code ?? "unknown"}`;
}

function quote(lines: readonly string[]): string {
  return lines.length === 0 ? " (it wrote no output)" : `. Last output:\n${lines.join("\n")}`;
}

/**
 * One start attempt failed: the child exited while starting, never became healthy before the deadline, or could not
 * be spawned. The message quotes the child's last output lines, so the client sees *why* (bad model file, OOM, ...).
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
    super(`The ${processName} process failed to start: it ${reason}${quote(lastLines)}`, {
      code: "engine_start_failed",
      cause: options.cause,
    });
    this.reason = reason;
    this.lastLines = lastLines;
    this.portInUse = options.portInUse ?? false;
  }
}

/** Too many failures in a row: the process is paused for a cooldown; requests get 503 with Retry-After. */
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
