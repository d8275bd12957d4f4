import { describe, expect, it } from "vitest";
import { resolveShardIndex, safeRelativePath } from "../../../src/detection/transformers/resolveShardIndex.js";

describe("safeRelativePath", () => {
  it.each([
    ["model.safetensors", "model.safetensors"],
    ["./model.safetensors", "model.safetensors"],
    ["sub//a.safetensors", "sub/a.safetensors"],
    ["sub\\a.safetensors", "sub/a.safetensors"],
  ])("%s → %s", (name, expected) => {
    expect(safeRelativePath(name)).toBe(expected);
  });

  it.each(["../x", "../../etc/passwd", "a/../../x", "a/../b", "/etc/passwd", "\\\\server\\share", "C:\\x", "c:x", "", ".", "./", "a\0b", 42, null, "x".repeat(2000)])(
    "refuses %j",
    (name) => {
      expect(safeRelativePath(name)).toBeNull();
    },
  );

  it("resolves against the index's folder", () => {
    expect(safeRelativePath("a.safetensors", "sub")).toBe("sub/a.safetensors");
    expect(safeRelativePath("../a.safetensors", "sub")).toBeNull();
  });
});

describe("resolveShardIndex", () => {
  const present = new Set(["a.safetensors", "b.safetensors"]);

  it("lists shards once, in first-mention order, and sorts out missing and unsafe names", () => {
    const r = resolveShardIndex(
      {
        metadata: { total_size: 1234 },
        weight_map: { t1: "b.safetensors", t2: "a.safetensors", t3: "b.safetensors", t4: "c.safetensors", t5: "../../etc/passwd", t6: ["x"] },
      },
      "model.safetensors.index.json",
      present,
    );
    expect(r).toEqual({
      shards: ["b.safetensors", "a.safetensors"],
      missing: ["c.safetensors"],
      unsafe: ["../../etc/passwd", '["x"]'],
      totalSize: 1234,
      tensorCount: 6,
      error: null,
    });
  });

  it("reports an index without weight_map and one naming absurdly many shards", () => {
    expect(resolveShardIndex({ weight_map: [] }, "i.json", present).error).toBe("i.json has no weight_map object");
    const huge = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`t${i}`, `s${i}.safetensors`]));
    expect(resolveShardIndex({ weight_map: huge }, "i.json", present).error).toMatch(/more than 4096 shards/);
  });
});
