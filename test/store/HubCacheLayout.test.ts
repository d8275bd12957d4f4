import { lstat, mkdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UnsafePathError } from "../../src/store/errors.js";
import { HubCacheLayout } from "../../src/store/HubCacheLayout.js";
import { tempDir } from "./storeRepos.js";

const COMMIT = "a".repeat(40);
const ETAG = "b".repeat(64);

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  dir = await tempDir("layout-");
});
afterEach(async () => {
  await dir.cleanup();
});

describe("HubCacheLayout names", () => {
  it("maps repos to huggingface_hub folder names and back; other folders are not repos", () => {
    expect(HubCacheLayout.repoFolderName("Qwen/Qwen2.5-0.5B")).toBe("models--Qwen--Qwen2.5-0.5B");
    expect(HubCacheLayout.repoFromFolderName("models--Qwen--Qwen2.5-0.5B")).toBe("Qwen/Qwen2.5-0.5B");
    expect(HubCacheLayout.repoFromFolderName("datasets--a--b")).toBeNull();
    expect(HubCacheLayout.repoFromFolderName(".locks")).toBeNull();
  });

  it("builds every path under the root, and refuses parts that are not what they claim", async () => {
    const layout = await HubCacheLayout.open(join(dir.path, "store"));
    const repoDir = join(layout.root, "models--acme--m");
    expect(layout.repoDir("acme/m")).toBe(repoDir);
    expect(layout.blobPath("acme/m", ETAG)).toBe(join(repoDir, "blobs", ETAG));
    expect(layout.snapshotFile("acme/m", COMMIT, "onnx/model.onnx")).toBe(join(repoDir, "snapshots", COMMIT, "onnx", "model.onnx"));
    expect(layout.refPath("acme/m", "main")).toBe(join(repoDir, "refs", "main"));
    expect(() => layout.blobPath("acme/m", "../../etc/passwd")).toThrow(UnsafePathError);
    expect(() => layout.blobPath("acme/m", "B".repeat(64))).toThrow(UnsafePathError);
    expect(() => layout.snapshotDir("acme/m", "main")).toThrow(UnsafePathError);
    expect(() => layout.snapshotFile("acme/m", COMMIT, "../../x")).toThrow(UnsafePathError);
    expect(() => layout.refPath("acme/m", "../../x")).toThrow(UnsafePathError);
  });
});

describe("HubCacheLayout on disk", () => {
  it("open creates the root; openExisting never does", async () => {
    expect(await HubCacheLayout.openExisting(join(dir.path, "none"))).toBeNull();
    await expect(lstat(join(dir.path, "none"))).rejects.toThrow();
    const layout = await HubCacheLayout.open(join(dir.path, "made", "here"));
    expect((await lstat(layout.root)).isDirectory()).toBe(true);
    expect((await HubCacheLayout.openExisting(layout.root))?.root).toBe(layout.root);
  });

  it("links a snapshot file to its blob with a relative link, and replaces a link that points elsewhere", async () => {
    const layout = await HubCacheLayout.open(dir.path);
    const link = await layout.linkSnapshot("acme/m", COMMIT, "sub/model.gguf", ETAG);
    expect(await readlink(link)).toBe(`../../../blobs/${ETAG}`);
    expect(await layout.linkSnapshot("acme/m", COMMIT, "sub/model.gguf", ETAG)).toBe(link); // same link: kept
    const other = "c".repeat(64);
    await layout.linkSnapshot("acme/m", COMMIT, "sub/model.gguf", other);
    expect(await readlink(link)).toBe(`../../../blobs/${other}`);
  });

  it("writes and reads refs; a missing or garbled ref reads as unknown", async () => {
    const layout = await HubCacheLayout.open(dir.path);
    expect(await layout.readRef("acme/m", "main")).toBeNull();
    await layout.writeRef("acme/m", "main", COMMIT);
    expect(await layout.readRef("acme/m", "main")).toBe(COMMIT);
    expect(await readFile(layout.refPath("acme/m", "main"), "utf8")).toBe(COMMIT);
    await writeFile(layout.refPath("acme/m", "main"), "not a commit");
    expect(await layout.readRef("acme/m", "main")).toBeNull();
    await expect(layout.writeRef("acme/m", "main", "HEAD")).rejects.toBeInstanceOf(UnsafePathError);
  });

  it("never writes through a symlinked or non-folder part of the store, nor outside it", async () => {
    const layout = await HubCacheLayout.open(join(dir.path, "store"));
    const elsewhere = join(dir.path, "elsewhere");
    await mkdir(elsewhere);
    await mkdir(layout.repoDir("acme/m"));
    await symlink(elsewhere, join(layout.repoDir("acme/m"), "snapshots"));
    await expect(layout.linkSnapshot("acme/m", COMMIT, "model.gguf", ETAG)).rejects.toThrow(/symlink/);
    await writeFile(join(layout.repoDir("acme/m"), "refs"), "a file");
    await expect(layout.writeRef("acme/m", "main", COMMIT)).rejects.toThrow(/not a folder/);
    await expect(layout.ensureDir(elsewhere)).rejects.toBeInstanceOf(UnsafePathError);
    await expect(layout.ensureDir(layout.root)).resolves.toBeUndefined();
  });
});
