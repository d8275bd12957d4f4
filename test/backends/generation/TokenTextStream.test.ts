import { describe, expect, it } from "vitest";
import { TokenTextStream } from "../../../src/backends/generation/TokenTextStream.js";

/** Tokens are byte values: a multi-byte character arrives over several tokens. */
const bytes = (tokens: readonly number[]) => Buffer.from(tokens).toString("utf8");
const of = (s: string) => [...Buffer.from(s, "utf8")];

function run(input: string, stop: string[]) {
  const text = new TokenTextStream<number>(bytes, stop);
  let out = "";
  for (const t of of(input)) {
    const m = text.push(t);
    out += m.text;
    if (m.stopped) return { out, stopped: true, end: text.end() };
  }
  const end = text.end();
  return { out: out + end.text, stopped: end.stopped, end };
}

describe("TokenTextStream", () => {
  it("never splits a character and cuts at a stop sequence that spans tokens", () => {
    expect(run("héllo wörld", [])).toMatchObject({ out: "héllo wörld", stopped: false });
    expect(run("héllo wörld", ["wö"])).toMatchObject({ out: "héllo ", stopped: true, end: { text: "", stopped: true } });
  });

  it("releases text held for a stop sequence that never completes, at the end", () => {
    expect(run("the end: STO", ["STOP"])).toMatchObject({ out: "the end: STO", stopped: false });
  });

  it("an incomplete character at the very end is flushed, not lost", () => {
    const text = new TokenTextStream<number>(bytes, []);
    expect(text.push(0xc3)).toEqual({ text: "", stopped: false });
    expect(text.end()).toEqual({ text: "\uFFFD", stopped: false });
  });
});
