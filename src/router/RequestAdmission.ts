import { ServerBusyError, ServiceUnavailableError, type TabAgentError } from "../core/errors.js";
import type { Lease } from "./ModelRunner.js";

/** The model a request asks for, as admission sees it (a ModelRunner, or a stand-in in tests). */
export interface AdmissionTarget {
  /** The 503 for work that cannot be admitted while the model loads; null when it is not loading. */
  loadingRefusal(): TabAgentError | null;
  /** Waits for the model's slot (or its queue's 429) and a loaded engine. */
  acquire(signal: AbortSignal): Promise<Lease>;
}

interface RequestAdmissionOptions {
  /** Requests admitted at once (running or queued) across all models; default unlimited. */
  maxInflight?: number;
}

/**
 * Retry-After for a full per-model queue: about one round of the model's slots per queued request ahead, at
 * least 1 s.
 */
export function queueRetryAfterSeconds(queued: number, parallel: number): number {
  return Math.max(1, Math.ceil(queued / Math.max(1, parallel)));
}

/**
 * Retry-After while a model loads: the rest of the last load's duration (or, for a first load, as long again as
 * it has taken so far), 1 to 60 s.
 */
export function loadingRetryAfterSeconds(elapsedMs: number, lastLoadMs: number | null): number {
  const expected = lastLoadMs ?? 2 * elapsedMs;
  return Math.min(60, Math.max(1, Math.ceil((expected - elapsedMs) / 1000)));
}

/**
 * The daemon-wide gate in front of every model's own queue: refuses work while shutting down (503) and past
 * `maxInflight` (429 server_busy, or the model's 503 model_loading when it is still loading: not too much work,
 * just not yet). Each admitted request counts until its lease is released, exactly once.
 */
export class RequestAdmission {
  private inflight = 0;
  private closing = false;

  constructor(private readonly options: RequestAdmissionOptions = {}) {}

  /** Requests admitted and not yet released (running or queued). */
  get admitted(): number {
    return this.inflight;
  }

  /** From now on every request is refused with 503 shutting_down. */
  close(): void {
    this.closing = true;
  }

  async admit(target: AdmissionTarget, signal: AbortSignal): Promise<Lease> {
    if (this.closing) throw new ServiceUnavailableError("The server is shutting down.", { code: "shutting_down" });
    const limit = this.options.maxInflight ?? Infinity;
    if (this.inflight >= limit) throw target.loadingRefusal() ?? new ServerBusyError(limit);
    this.inflight++;
    let lease: Lease;
    try {
      lease = await target.acquire(signal);
    } catch (err) {
      this.inflight--;
      throw err;
    }
    let released = false;
    return {
      backend: lease.backend,
      release: () => {
        if (released) return;
        released = true;
        this.inflight--;
        lease.release();
      },
    };
  }
}
