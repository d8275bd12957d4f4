import { describe, expect, it } from "vitest";
import { StopSequenceMatcher } from "../../../src/backends/generation/StopSequenceMatcher.js";

function run(stops: string[], pieces: string[]) {
  const m = new StopSequenceMatcher(stops);
  let out = "";
  for (const p of pieces) {
    const r = m.push(p);
    out += r.text;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + m.flush(), stopped: false };
}

describe("StopSequenceMatcher", () => {
  it("passes text through without stops", () => {
    expect(run([], ["a", "b"])).toEqual({ out: "ab", stopped: false });
  });
  it("stops inside one piece and drops the rest", () => {
    expect(run(["END"], ["abcENDxyz"])).toEqual({ out: "abc", stopped: true });
  });
  it("finds a stop split across pieces and never emits its beginning", () => {
    const m = new StopSequenceMatcher(["</s>"]);
    expect(m.push("hello <")).toEqual({ text: "hello ", stopped: false });
    expect(m.push("/")).toEqual({ text: "", stopped: false });
    expect(m.push("s>more")).toEqual({ text: "", stopped: true });
  });
  it("releases held text when the match fails", () => {
    const m = new StopSequenceMatcher(["abc"]);
    expect(m.push("xab")).toEqual({ text: "x", stopped: false });
    expect(m.push("d")).toEqual({ text: "abd", stopped: false });
  });
  it("picks the earliest of several stops", () => {
    expect(run(["zz", "b"], ["a", "bzz"])).toEqual({ out: "a", stopped: true });
  });
  it("flushes a partial match at the end", () => {
    expect(run(["abc"], ["xa", "b"])).toEqual({ out: "xab", stopped: false });
  });
  it("ignores empty stop strings", () => {
    expect(run([""], ["abc"])).toEqual({ out: "abc", stopped: false });
  });
});
