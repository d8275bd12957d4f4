// The fake hub against @huggingface/hub's own functions, so other tests can trust it speaks the library's dialect.
// Also records why HubModelFileSystem does its own ranged fetches instead of downloadFile's blob.
import { downloadFile, fileDownloadInfo, listFiles, modelInfo, pathsInfo } from "@huggingface/hub";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeHub, type FakeHub } from "../../helpers/fakeHub.js";

const big = Buffer.alloc(8 << 20);
big.write("HELLO", 1000);

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub({
    "acme/lib": { files: { "big.bin": big, "config.json": "{}", "sub/dir/x.txt": "xx" } },
    "acme/proxy": { ignoreRange: true, files: { "big.bin": big } },
  });
});
afterAll(async () => {
  await hub.close();
});
beforeEach(() => hub.resetStats());

describe("fake hub with @huggingface/hub 2.17.5", () => {
  it("answers modelInfo with the commit sha", async () => {
    const info = await modelInfo({ name: "acme/lib", hubUrl: hub.url, additionalFields: ["sha"] });
    expect(info).toMatchObject({ name: "acme/lib", sha: hub.commitOf("acme/lib"), gated: false, private: false });
  });

  it("answers listFiles, recursive or not, with LFS details for weights", async () => {
    const all = [];
    for await (const f of listFiles({ repo: "acme/lib", recursive: true, hubUrl: hub.url })) all.push(f);
    expect(all.map((f) => `${f.type} ${f.path}`)).toEqual([
      "file .gitattributes",
      "file big.bin",
      "file config.json",
      "directory sub",
      "directory sub/dir",
      "file sub/dir/x.txt",
    ]);
    expect(all[1]).toMatchObject({ size: big.length, lfs: { size: big.length, pointerSize: expect.any(Number) } });
    const sub = [];
    for await (const f of listFiles({ repo: "acme/lib", path: "sub", hubUrl: hub.url })) sub.push(f.path);
    expect(sub).toEqual(["sub/dir"]);
  });

  it("answers pathsInfo, leaving out missing paths", async () => {
    const info = await pathsInfo({ repo: "acme/lib", paths: ["config.json", "nope", "sub"], hubUrl: hub.url });
    expect(info.map((p) => `${p.type} ${p.path} ${p.size}`)).toEqual(["file config.json 2", "directory sub 0"]);
  });

  it("answers fileDownloadInfo through the LFS redirect, and null for a missing file", async () => {
    const info = await fileDownloadInfo({ repo: "acme/lib", path: "big.bin", hubUrl: hub.url });
    expect(info).toMatchObject({ size: big.length, etag: expect.stringMatching(/^"[0-9a-f]{64}"$/) });
    expect(info?.url).toMatch(/\/_lfs\/[0-9a-f]{64}$/);
    expect(await fileDownloadInfo({ repo: "acme/lib", path: "nope", hubUrl: hub.url })).toBeNull();
  });

  it("downloadFile's blob does lazy ranged reads on a well-behaved hub", async () => {
    const blob = await downloadFile({ repo: "acme/lib", path: "big.bin", hubUrl: hub.url, xet: false });
    hub.resetStats();
    expect(Buffer.from(await blob!.slice(1000, 1005).arrayBuffer()).toString()).toBe("HELLO");
    expect(hub.stats.bytesServed).toBe(5);
  });

  it("downloadFile has no guard against a server that ignores Range: it fails and leaves the body pending", async () => {
    await expect(downloadFile({ repo: "acme/proxy", path: "big.bin", hubUrl: hub.url })).rejects.toThrow(/Expected size information/);
    const cdn = hub.stats.requests.find((r) => r.path.startsWith("/_lfs/"));
    expect(cdn).toMatchObject({ status: 200, range: "bytes=0-0" });
    // Nobody cancelled that body: the server has pushed far more than the one byte asked for.
    expect(hub.stats.bytesServed).toBeGreaterThan(100_000);
  });
});
