import { describe, expect, it } from "vitest";
import { looksLikeHubSource, parseHubSource } from "../../../src/detection/hub/parseHubSource.js";

describe("parseHubSource", () => {
  it.each([
    ["owner/name", { repo: "owner/name", revision: "main", file: null }],
    ["TheBloke/Llama-2-7B-GGUF", { repo: "TheBloke/Llama-2-7B-GGUF", revision: "main", file: null }],
    ["o_1/n.a-m_e@v1.0", { repo: "o_1/n.a-m_e", revision: "v1.0", file: null }],
    ["owner/name@refs/pr/12", { repo: "owner/name", revision: "refs/pr/12", file: null }],
    ["owner/name@0123456789abcdef0123456789abcdef01234567", { repo: "owner/name", revision: "0123456789abcdef0123456789abcdef01234567", file: null }],
    ["owner/name:model-Q4_K_M.gguf", { repo: "owner/name", revision: "main", file: "model-Q4_K_M.gguf" }],
    ["owner/name:path/in/repo.gguf", { repo: "owner/name", revision: "main", file: "path/in/repo.gguf" }],
    ["owner/name@dev:sub/m.gguf", { repo: "owner/name", revision: "dev", file: "sub/m.gguf" }],
    // After the revision, `@` and `:` belong to the file name.
    ["owner/name@dev:odd@name:x.gguf", { repo: "owner/name", revision: "dev", file: "odd@name:x.gguf" }],
    ["owner/name:weights with space.gguf", { repo: "owner/name", revision: "main", file: "weights with space.gguf" }],
    [`${"a".repeat(96)}/${"b".repeat(96)}`, { repo: `${"a".repeat(96)}/${"b".repeat(96)}`, revision: "main", file: null }],
  ])("parses %s", (text, expected) => {
    expect(parseHubSource(text)).toEqual(expected);
  });

  it.each([
    "",
    "gpt2", // single-segment legacy ids are ambiguous with local names
    "owner/",
    "/name",
    "owner/name/extra",
    "./owner/name",
    "../owner/name",
    "/abs/path",
    "~/models",
    "https://huggingface.co/owner/name",
    "hf.co/owner/name/x",
    `${"a".repeat(97)}/name`,
    `owner/${"b".repeat(97)}`,
    "own..er/name",
    "owner/na--me",
    "-owner/name",
    "owner/name-",
    ".owner/name",
    "owner/name.",
    "owner/name.git",
    "own er/name",
    "owner/näme",
    "owner/name@",
    "owner/name@:x.gguf",
    "owner/name@a..b",
    "owner/name@-rev",
    "owner/name@rev/",
    "owner/name@a//b",
    "owner/name@main.lock",
    "owner/name@rev with space",
    "owner/name:",
    "owner/name:/abs.gguf",
    "owner/name:dir/",
    "owner/name:../escape.gguf",
    "owner/name:a/./b.gguf",
    "owner/name:a\\b.gguf",
    "owner/name:a\nb.gguf",
  ])("rejects %j", (text) => {
    expect(parseHubSource(text)).toBeNull();
  });
});

describe("looksLikeHubSource", () => {
  it("accepts repo ids, with revision and file", () => {
    expect(looksLikeHubSource("owner/name")).toBe(true);
    expect(looksLikeHubSource("owner/name@v2:m.gguf")).toBe(true);
  });

  it("rejects explicit local paths, which is how a user forces a local folder named like a repo", () => {
    for (const p of ["./owner/name", "../owner/name", "/models/owner/name", "~/owner/name", "models/owner/name", "model.gguf"]) {
      expect(looksLikeHubSource(p), p).toBe(false);
    }
  });
});
