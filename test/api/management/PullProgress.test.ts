import { describe, expect, it } from "vitest";
import { PullProgress } from "../../../src/api/management/PullProgress.js";

describe("PullProgress", () => {
  it("counts the whole pull (files already in the store included), throttles progress, and ends each file with one", () => {
    let now = 0;
    const p = new PullProgress(250, () => now);
    const resolved = p.handle({
      type: "resolved",
      repo: "a/b",
      commit: "c".repeat(40),
      format: "gguf",
      quant: "Q8_0",
      files: [
        { path: "old.bin", size: 100, present: true },
        { path: "m.gguf", size: 1000, present: false },
      ],
      totalBytes: 1100,
    });
    expect(resolved).toEqual([expect.objectContaining({ type: "resolved", total_bytes: 1100 })]);
    expect(p.handle({ type: "file-start", path: "m.gguf", size: 1000, resumeFrom: 200 })).toEqual([{ type: "file", path: "m.gguf", size: 1000, resume_from: 200 }]);
    const first = p.handle({ type: "progress", path: "m.gguf", bytes: 100 });
    // 100 present + 200 resumed + 100 fetched; one sample: no speed yet.
    expect(first).toEqual([{ type: "progress", path: "m.gguf", done_bytes: 400, total_bytes: 1100, bytes_per_second: null, eta_seconds: null }]);
    now = 100;
    expect(p.handle({ type: "progress", path: "m.gguf", bytes: 100 })).toEqual([]); // within 250 ms
    now = 1000;
    const later = p.handle({ type: "progress", path: "m.gguf", bytes: 300 });
    // 400 network bytes over 1 s → 400 B/s; 300 bytes left → 0.8 s.
    expect(later).toEqual([{ type: "progress", path: "m.gguf", done_bytes: 800, total_bytes: 1100, bytes_per_second: 400, eta_seconds: 0.8 }]);
    now = 1100;
    p.handle({ type: "progress", path: "m.gguf", bytes: 300 });
    const done = p.handle({ type: "file-done", path: "m.gguf", reused: false });
    expect(done[0]).toMatchObject({ type: "progress", done_bytes: 1100, eta_seconds: 0 });
    expect(done[1]).toEqual({ type: "file_done", path: "m.gguf", reused: false });
  });

  it("passes retries and waits on, and never reports more than the total", () => {
    const p = new PullProgress(0, () => 0);
    p.handle({ type: "resolved", repo: "a/b", commit: "c".repeat(40), format: "gguf", quant: null, files: [{ path: "f", size: 10, present: false }], totalBytes: 10 });
    expect(p.handle({ type: "retry", path: "f", attempt: 1, error: "reset" })).toEqual([{ type: "retry", path: "f", attempt: 1, error: "reset" }]);
    expect(p.handle({ type: "waiting", path: "f" })).toEqual([{ type: "waiting", path: "f" }]);
    expect(p.handle({ type: "progress", path: "f", bytes: 50 })[0]).toMatchObject({ done_bytes: 10, total_bytes: 10 });
  });
});
