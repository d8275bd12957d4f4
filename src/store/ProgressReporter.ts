import { formatBytes, formatDuration } from "./formatBytes.js";
import type { PullEvent } from "./pullModel.js";

/**
 * `tty`: one redrawn progress line per file (bytes, speed, ETA). `json`: one JSON object per line (progress at most
 * once a second). `lines`: a line per file when it starts and ends, for logs and pipes. `quiet`: nothing.
 */
type ProgressMode = "tty" | "json" | "lines" | "quiet";

interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

interface ProgressReporterOptions {
  out: ProgressOutput;
  mode: ProgressMode;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
  /** Least time between two redraws (tty) or progress lines (json); default 100 ms (tty), 1000 ms (json). */
  intervalMs?: number;
}

/** The mode a CLI gets by default: a bar on a terminal, plain lines otherwise. */
export function defaultProgressMode(out: ProgressOutput, flags: { json?: boolean; quiet?: boolean }): ProgressMode {
  if (flags.json) return "json";
  if (flags.quiet) return "quiet";
  return out.isTTY ? "tty" : "lines";
}

const SPEED_WINDOW_MS = 5_000;

interface ProgressLine {
  name: string;
  done: number;
  total: number;
  bytesPerSecond: number | null;
  width: number;
}

/** `name  42% [########            ]  1.1 MiB/2.6 MiB  3.4 MiB/s  ETA 0:02`, fitted to `width` columns. */
export function renderProgressLine({ name, done, total, bytesPerSecond, width }: ProgressLine): string {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
  const speed = bytesPerSecond === null ? "--" : `${formatBytes(bytesPerSecond)}/s`;
  const eta = bytesPerSecond && bytesPerSecond > 0 ? (total - done) / bytesPerSecond : null;
  const tail = ` ${String(pct).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)}  ${speed}  ETA ${formatDuration(eta)}`;
  const barWidth = Math.max(0, Math.min(30, width - tail.length - 24));
  const filled = total > 0 ? Math.round((barWidth * done) / total) : barWidth;
  const bar = barWidth >= 5 ? ` [${"#".repeat(filled)}${" ".repeat(barWidth - filled)}]` : "";
  const room = Math.max(8, width - tail.length - bar.length - 1);
  const shown = name.length > room ? `…${name.slice(name.length - room + 1)}` : name;
  return `${shown}${bar}${tail}`.slice(0, Math.max(width, 20));
}

interface FileState {
  size: number;
  done: number;
  startedAt: number;
  startBytes: number;
  samples: { t: number; done: number }[];
  lastDraw: number;
}

export class ProgressReporter {
  private readonly now: () => number;
  private readonly files = new Map<string, FileState>();
  private lineOpen = false;

  constructor(private readonly options: ProgressReporterOptions) {
    this.now = options.now ?? Date.now;
  }

  private get interval(): number {
    return this.options.intervalMs ?? (this.options.mode === "json" ? 1000 : 100);
  }

  private write(text: string): void {
    this.options.out.write(text);
  }

  private json(obj: object): void {
    this.write(`${JSON.stringify(obj)}\n`);
  }

  private endLine(): void {
    if (this.lineOpen) this.write("\n");
    this.lineOpen = false;
  }

  private speed(f: FileState): number | null {
    const first = f.samples[0];
    const last = f.samples.at(-1);
    if (!first || !last || last.t - first.t < 200) return null;
    return ((last.done - first.done) * 1000) / (last.t - first.t);
  }

  private draw(path: string, f: FileState): void {
    const width = this.options.out.columns || 80;
    this.write(`\r\x1b[2K${renderProgressLine({ name: path, done: f.done, total: f.size, bytesPerSecond: this.speed(f), width })}`);
    this.lineOpen = true;
  }

  handle(e: PullEvent): void {
    const { mode } = this.options;
    if (mode === "quiet") return;
    const t = this.now();
    switch (e.type) {
      case "resolved": {
        if (mode === "json")
          return this.json({ type: "resolved", repo: e.repo, commit: e.commit, format: e.format, quant: e.quant, files: e.files, total_bytes: e.totalBytes });
        const missing = e.files.filter((f) => !f.present);
        this.write(
          `pulling ${e.repo}@${e.commit.slice(0, 12)} (${e.format}${e.quant ? ` ${e.quant}` : ""}): ${e.files.length} file${e.files.length === 1 ? "" : "s"}, ${formatBytes(e.totalBytes)}` +
            `${missing.length < e.files.length ? `, ${e.files.length - missing.length} already in the store` : ""}\n`,
        );
        return;
      }
      case "file-start": {
        const prev = this.files.get(e.path);
        const f: FileState = {
          size: e.size,
          done: e.resumeFrom,
          startedAt: prev?.startedAt ?? t,
          startBytes: prev?.startBytes ?? e.resumeFrom,
          samples: [{ t, done: e.resumeFrom }],
          lastDraw: 0,
        };
        this.files.set(e.path, f);
        if (mode === "json") return this.json({ type: "file", path: e.path, size: e.size, resume_from: e.resumeFrom });
        if (mode === "lines") {
          if (!prev) this.write(`  ${e.path}: ${formatBytes(e.size)}${e.resumeFrom > 0 ? `, resuming at ${formatBytes(e.resumeFrom)}` : ""}\n`);
          return;
        }
        this.draw(e.path, f);
        return;
      }
      case "progress": {
        const f = this.files.get(e.path);
        if (!f) return;
        f.done += e.bytes;
        if (t - f.lastDraw < this.interval) return;
        f.lastDraw = t;
        f.samples.push({ t, done: f.done });
        while (f.samples.length > 2 && t - f.samples[0]!.t > SPEED_WINDOW_MS) f.samples.shift();
        if (mode === "json")
          return this.json({ type: "progress", path: e.path, done: f.done, total: f.size, bytes_per_second: this.speed(f) === null ? null : Math.round(this.speed(f)!) });
        if (mode === "tty") this.draw(e.path, f);
        return;
      }
      case "retry":
        if (mode === "json") return this.json({ type: "retry", path: e.path, attempt: e.attempt, error: e.error });
        this.endLine();
        this.write(`  ${e.path}: ${e.error}; resuming (attempt ${e.attempt + 1})\n`);
        return;
      case "waiting":
        if (mode === "json") return this.json({ type: "waiting", path: e.path });
        this.endLine();
        this.write(`  ${e.path}: another pull is downloading it; waiting\n`);
        return;
      case "file-done": {
        const f = this.files.get(e.path);
        if (mode === "json") return this.json({ type: "file-done", path: e.path, reused: e.reused });
        if (e.reused || !f) {
          this.endLine();
          this.write(`  ${e.path}: already in the store\n`);
          return;
        }
        const secs = Math.max(0.001, (t - f.startedAt) / 1000);
        const rate = (f.size - f.startBytes) / secs;
        if (mode === "tty") {
          this.write(`\r\x1b[2K${renderProgressLine({ name: e.path, done: f.size, total: f.size, bytesPerSecond: rate, width: this.options.out.columns || 80 })}\n`);
          this.lineOpen = false;
        } else {
          this.write(`  ${e.path}: done, ${formatBytes(f.size - f.startBytes)} in ${secs.toFixed(1)} s (${formatBytes(rate)}/s)\n`);
        }
        return;
      }
      case "done":
        if (mode === "json") {
          const r = e.result;
          return this.json({
            type: "done",
            id: r.id,
            repo: r.repo,
            commit: r.commit,
            path: r.modelPath,
            fetched_bytes: r.fetchedBytes,
            resumed_bytes: r.resumedBytes,
            seconds: r.seconds,
          });
        }
        this.endLine();
        return;
    }
  }

  /** Ends an open progress line (after an error or Ctrl-C), so the next message starts on its own line. */
  close(): void {
    this.endLine();
  }
}
