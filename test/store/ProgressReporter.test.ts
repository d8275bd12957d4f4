import { describe, expect, it } from "vitest";
import { ProgressReporter, renderProgressLine } from "../../src/store/ProgressReporter.js";

function fakeOut(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns: 100, write: (s: string) => writes.push(s) } };
}

const resolved = {
  type: "resolved" as const,
  repo: "acme/x",
  commit: "a".repeat(40),
  format: "gguf",
  quant: "Q4_K_M",
  files: [{ path: "x.gguf", size: 10 << 20, present: false }],
  totalBytes: 10 << 20,
};

describe("ProgressReporter", () => {
  it("renders bytes, percentage, speed and ETA", () => {
    expect(renderProgressLine({ name: "x.gguf", done: 5 << 20, total: 10 << 20, bytesPerSecond: 1 << 20, width: 100 })).toBe(
      "x.gguf [###############               ]  50% 5.0 MiB/10.0 MiB  1.0 MiB/s  ETA 0:05",
    );
    expect(renderProgressLine({ name: "x.gguf", done: 0, total: 10, bytesPerSecond: null, width: 100 })).toMatch(/0% 0 B\/10 B {2}-- {2}ETA --:--$/);
    const narrow = renderProgressLine({ name: "a-very-long-model-file-name-Q4_K_M.gguf", done: 1, total: 2, bytesPerSecond: 1, width: 50 });
    expect(narrow.length).toBeLessThanOrEqual(50);
    expect(narrow).toMatch(/^….*50%/);
  });

  it("redraws one line on a TTY at most every 100 ms, with the speed over the recent window", () => {
    let now = 0;
    const { writes, out } = fakeOut(true);
    const r = new ProgressReporter({ out, mode: "tty", now: () => now });
    r.handle(resolved);
    r.handle({ type: "file-start", path: "x.gguf", size: 10 << 20, resumeFrom: 0 });
    for (let i = 0; i < 50; i++) {
      now += 20; // 1 MiB per 100 ms = 10 MiB/s
      r.handle({ type: "progress", path: "x.gguf", bytes: ((1 << 20) >> 2) >> 1 });
    }
    const frames = writes.filter((w) => w.startsWith("\r\x1b[2K"));
    expect(frames.length).toBeGreaterThan(5);
    expect(frames.length).toBeLessThanOrEqual(12);
    expect(frames.at(-1)).toMatch(/ 62% 6\.3 MiB\/10\.0 MiB {2}6\.\d MiB\/s {2}ETA 0:01$/);
    r.handle({ type: "file-done", path: "x.gguf", reused: false });
    expect(writes.at(-1)).toMatch(/100% 10\.0 MiB\/10\.0 MiB .*\n$/);
  });

  it("writes JSON lines, progress at most once a second", () => {
    let now = 0;
    const { writes, out } = fakeOut(false);
    const r = new ProgressReporter({ out, mode: "json", now: () => now });
    r.handle(resolved);
    r.handle({ type: "file-start", path: "x.gguf", size: 10 << 20, resumeFrom: 1 << 20 });
    for (let i = 0; i < 30; i++) {
      now += 100;
      r.handle({ type: "progress", path: "x.gguf", bytes: 1 << 18 });
    }
    const objs = writes.map((w) => JSON.parse(w) as { type: string });
    expect(objs.filter((o) => o.type === "progress")).toHaveLength(3);
    expect(objs[1]).toEqual({ type: "file", path: "x.gguf", size: 10 << 20, resume_from: 1 << 20 });
  });

  it("writes plain lines without control codes when not a TTY, and nothing when quiet", () => {
    const { writes, out } = fakeOut(false);
    const r = new ProgressReporter({ out, mode: "lines" });
    r.handle(resolved);
    r.handle({ type: "file-start", path: "x.gguf", size: 10 << 20, resumeFrom: 0 });
    r.handle({ type: "progress", path: "x.gguf", bytes: 10 << 20 });
    r.handle({ type: "retry", path: "x.gguf", attempt: 1, error: "connection lost" });
    r.handle({ type: "file-done", path: "x.gguf", reused: false });
    expect(writes.join("")).not.toMatch(/\r|\x1b/);
    expect(writes.join("")).toMatch(
      /pulling acme\/x@aaaaaaaaaaaa \(gguf Q4_K_M\): 1 file, 10\.0 MiB\n {2}x\.gguf: 10\.0 MiB\n {2}x\.gguf: connection lost; resuming \(attempt 2\)\n {2}x\.gguf: done/,
    );
    const quiet = fakeOut(false);
    const q = new ProgressReporter({ out: quiet.out, mode: "quiet" });
    q.handle(resolved);
    expect(quiet.writes).toEqual([]);
  });
});
