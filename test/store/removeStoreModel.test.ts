import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StoreRefusalError } from "../../src/store/errors.js";
import { HubCacheLayout } from "../../src/store/HubCacheLayout.js";
import { removeStoreModel } from "../../src/store/removeStoreModel.js";
import { tempDir } from "./storeRepos.js";

const REPO = "acme/m";
const C1 = "1".repeat(40);
const C2 = "2".repeat(40);
const etag = (n: number) => String(n).repeat(64);

let dir: Awaited<ReturnType<typeof tempDir>>;
let layout: HubCacheLayout;
beforeEach(async () => {
  dir = await tempDir("rm-");
  layout = await HubCacheLayout.open(join(dir.path, "store"));
});
afterEach(async () => {
  await dir.cleanup();
});

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );

/** Puts a blob of `size` bytes in the store and links `file` of `commit` to it. */
async function put(commit: string, file: string, n: number, size: number): Promise<string> {
  const blob = layout.blobPath(REPO, etag(n));
  await layout.ensureDir(join(layout.repoDir(REPO), "blobs"));
  await writeFile(blob, Buffer.alloc(size));
  await layout.linkSnapshot(REPO, commit, file, etag(n));
  return blob;
}

const remove = (commit: string, files: string[] | null) => removeStoreModel({ storeDir: layout.root, repo: REPO, commit, files });

describe("removeStoreModel", () => {
  it("removes one quantisation's link and blob, and leaves the others", async () => {
    const q4 = await put(C1, "m-Q4_K_M.gguf", 1, 100);
    const q8 = await put(C1, "m-Q8_0.gguf", 2, 200);
    expect(await remove(C1, ["m-Q4_K_M.gguf"])).toEqual({ removedLinks: 1, removedBlobs: 1, freedBytes: 100 });
    expect(await exists(q4)).toBe(false);
    expect(await exists(q8)).toBe(true);
    expect(await exists(layout.snapshotFile(REPO, C1, "m-Q8_0.gguf"))).toBe(true);
  });

  it("keeps a blob another revision still points to", async () => {
    const shared = await put(C1, "m-Q4_K_M.gguf", 1, 100);
    await put(C2, "m-Q4_K_M.gguf", 1, 100);
    expect(await remove(C1, ["m-Q4_K_M.gguf"])).toEqual({ removedLinks: 1, removedBlobs: 0, freedBytes: 0 });
    expect(await exists(shared)).toBe(true);
    expect(await exists(layout.snapshotDir(REPO, C1))).toBe(false); // the emptied snapshot folder goes
    expect(await exists(layout.snapshotFile(REPO, C2, "m-Q4_K_M.gguf"))).toBe(true);
  });

  it("keeps a shared vision projector while another model file of the snapshot uses it", async () => {
    await put(C1, "v-Q4_K_M.gguf", 1, 100);
    await put(C1, "v-Q8_0.gguf", 2, 200);
    const projector = await put(C1, "mmproj-v-f16.gguf", 3, 50);
    expect(await remove(C1, ["v-Q4_K_M.gguf", "mmproj-v-f16.gguf"])).toMatchObject({ removedLinks: 1, freedBytes: 100 });
    expect(await exists(projector)).toBe(true);
    expect(await remove(C1, ["v-Q8_0.gguf", "mmproj-v-f16.gguf"])).toMatchObject({ removedLinks: 2, removedBlobs: 2, freedBytes: 250 });
    expect(await exists(projector)).toBe(false);
  });

  it("the last model of a repo takes its refs, partial downloads and folders with it, subfolders of the snapshot included", async () => {
    await put(C1, "config.json", 1, 10);
    await put(C1, "weights/model.safetensors", 2, 1000);
    await layout.writeRef(REPO, "main", C1);
    await writeFile(join(layout.repoDir(REPO), "blobs", `${etag(9)}.incomplete`), Buffer.alloc(30));
    const result = await remove(C1, null);
    expect(result).toEqual({ removedLinks: 2, removedBlobs: 2, freedBytes: 1040 });
    expect(await exists(layout.repoDir(REPO))).toBe(false);
    expect(await readdir(layout.root)).toEqual([]);
  });

  it("a ref to another commit, and files it does not own, keep the repo folder", async () => {
    await put(C1, "m-Q4_K_M.gguf", 1, 100);
    await layout.writeRef(REPO, "main", C2);
    await writeFile(join(layout.repoDir(REPO), "blobs", "notes.txt"), "mine");
    await remove(C1, null);
    expect(await layout.readRef(REPO, "main")).toBe(C2);
    expect(await readFile(join(layout.repoDir(REPO), "blobs", "notes.txt"), "utf8")).toBe("mine");
  });

  it("a link that leads out of the store is removed as a link; its target is never touched", async () => {
    const outside = join(dir.path, "precious.bin");
    await writeFile(outside, "keep me");
    await mkdir(layout.snapshotDir(REPO, C1), { recursive: true });
    await symlink(outside, layout.snapshotFile(REPO, C1, "m-Q4_K_M.gguf"));
    expect(await remove(C1, null)).toEqual({ removedLinks: 1, removedBlobs: 0, freedBytes: 0 });
    expect(await readFile(outside, "utf8")).toBe("keep me");
  });

  it("counts a real file in a snapshot (a copy, not a link) as freed", async () => {
    await mkdir(layout.snapshotDir(REPO, C1), { recursive: true });
    await writeFile(layout.snapshotFile(REPO, C1, "m-Q4_K_M.gguf"), Buffer.alloc(70));
    expect(await remove(C1, ["m-Q4_K_M.gguf", "not-there.gguf"])).toEqual({ removedLinks: 1, removedBlobs: 0, freedBytes: 70 });
  });

  it("refuses a store that does not exist, and a commit that is not one", async () => {
    await expect(removeStoreModel({ storeDir: join(dir.path, "none"), repo: REPO, commit: C1, files: null })).rejects.toBeInstanceOf(StoreRefusalError);
    await expect(remove("../../x", null)).rejects.toThrow(/not a commit sha/);
  });
});
