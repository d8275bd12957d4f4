import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectionSchema } from "../../src/core/detectionSchema.js";
import { PersistentDetectionCache } from "../../src/store/PersistentDetectionCache.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "detection-cache-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const good = detectionSchema.parse({
  ...testDescriptor().detection,
  details: { ggufVersion: 3, tensorCount: 2, tensorTypes: { F32: 2 }, flavorReason: "plain" },
});

describe("PersistentDetectionCache", () => {
  it("gives back what it saved", async () => {
    const path = join(dir, "roundtrip.json");
    const cache = await PersistentDetectionCache.open(path);
    cache.set("a", [good]);
    await cache.save();
    const again = await PersistentDetectionCache.open(path);
    expect(again.get("a")).toEqual([good]);
  });

  it("counts an entry whose details do not fit the schema as a miss, and keeps the others", async () => {
    const path = join(dir, "stale.json");
    const stale = { ...good, details: { ...good.details, tensorCount: "two" } };
    const otherFormat = { ...good, format: "onnx", details: { layout: 7 } };
    const unknownKey = { ...good, details: { ...good.details, removedLongAgo: true } };
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        entries: [
          ["ok", [good]],
          ["stale", [stale]],
          ["other", [good, otherFormat]],
          ["extra", [unknownKey]],
        ],
      }),
    );
    const cache = await PersistentDetectionCache.open(path);
    expect(cache.get("ok")).toEqual([good]);
    expect(cache.get("stale")).toBeUndefined();
    expect(cache.get("other")).toBeUndefined();
    expect(cache.get("extra")).toBeUndefined();
    // The next save leaves the stale entries out.
    await cache.save();
    const saved = JSON.parse(await readFile(path, "utf8")) as { entries: [string, unknown][] };
    expect(saved.entries.map(([key]) => key)).toEqual(["ok"]);
  });

  it("treats an unreadable file as an empty cache", async () => {
    const path = join(dir, "broken.json");
    await writeFile(path, "{ not json");
    const cache = await PersistentDetectionCache.open(path);
    expect(cache.size).toBe(0);
  });
});
