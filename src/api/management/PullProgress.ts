import type { PullModelEvent } from "./ManagementStore.js";

/** A pull's progress as the management API streams it (docs/api.md "Management API", Pull). */
export type PullWireEvent =
  | {
      type: "resolved";
      repo: string;
      commit: string;
      format: string;
      quant: string | null;
      files: { path: string; size: number; present: boolean }[];
      total_bytes: number;
    }
  | { type: "file"; path: string; size: number; resume_from: number }
  | { type: "progress"; path: string; done_bytes: number; total_bytes: number; bytes_per_second: number | null; eta_seconds: number | null }
  | { type: "retry"; path: string; attempt: number; error: string }
  | { type: "waiting"; path: string }
  | { type: "file_done"; path: string; reused: boolean };

const SPEED_WINDOW_MS = 5_000;

/**
 * Folds pullModel's events into the wire events: byte counts over the whole pull (files already in the store
 * included), speed over the last few seconds of network bytes, and an ETA from it. Progress is sent at most every
 * `intervalMs`, and once more when each file is done, so a client always sees where a file ended.
 */
export class PullProgress {
  private total = 0;
  private done = 0;
  private fetched = 0;
  private lastSent = -Infinity;
  private samples: { t: number; fetched: number }[] = [];

  constructor(
    private readonly intervalMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {}

  handle(e: PullModelEvent): PullWireEvent[] {
    switch (e.type) {
      case "resolved":
        this.total = e.totalBytes;
        this.done = e.files.filter((f) => f.present).reduce((n, f) => n + f.size, 0);
        return [{ type: "resolved", repo: e.repo, commit: e.commit, format: e.format, quant: e.quant, files: e.files, total_bytes: e.totalBytes }];
      case "file-start":
        this.done += e.resumeFrom;
        return [{ type: "file", path: e.path, size: e.size, resume_from: e.resumeFrom }];
      case "progress": {
        this.done += e.bytes;
        this.fetched += e.bytes;
        const t = this.now();
        this.samples.push({ t, fetched: this.fetched });
        while (this.samples.length > 2 && t - this.samples[0]!.t > SPEED_WINDOW_MS) this.samples.shift();
        if (t - this.lastSent < this.intervalMs) return [];
        this.lastSent = t;
        return [this.progress(e.path)];
      }
      case "retry":
        return [{ type: "retry", path: e.path, attempt: e.attempt, error: e.error }];
      case "waiting":
        return [{ type: "waiting", path: e.path }];
      case "file-done":
        return [this.progress(e.path), { type: "file_done", path: e.path, reused: e.reused }];
      case "done":
        return [];
    }
  }

  private progress(path: string): PullWireEvent {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    const speed = first && last && last.t > first.t ? ((last.fetched - first.fetched) * 1000) / (last.t - first.t) : null;
    const done = Math.min(this.done, this.total);
    const eta = speed && speed > 0 ? Math.round(((this.total - done) / speed) * 10) / 10 : null;
    return { type: "progress", path, done_bytes: done, total_bytes: this.total, bytes_per_second: speed === null ? null : Math.round(speed), eta_seconds: eta };
  }
}
