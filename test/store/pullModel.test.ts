import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink, realpath, symlink, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GatedRepoError, HashMismatchError, InvalidPullSourceError, UnsafePathError } from "../../src/store/errors.js";
import { pullModel, type PullEvent } from "../../src/store/pullModel.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { bytes, ggufRepo, safetensorsRepo, tempDir } from "./storeRepos.js";

let hub: FakeHub;
let store: Awaited<ReturnType<typeof tempDir>>;
const big = bytes(3 << 20, 9);

beforeAll(async () => {
  hub = await startFakeHub({
    "acme/tiny-GGUF": ggufRepo(),
    "acme/tiny-st": safetensorsRepo(),
    "acme/big-GGUF": { files: { "big-Q4_K_M.gguf": big } },
    "acme/slow-GGUF": { chunkDelayMs: 20, files: { "slow-Q4_K_M.gguf": bytes(1 << 20, 5) } },
    "acme/bad-GGUF": { corrupt: ["bad-Q4_K_M.gguf"], files: { "bad-Q4_K_M.gguf": bytes(300_000, 6) } },
    "acme/gated-GGUF": { gated: true, files: { "g-Q4_K_M.gguf": bytes(1000, 7) } },
    "acme/denied-GGUF": { gated: true, accessDenied: true, files: { "g-Q4_K_M.gguf": bytes(1000, 7) } },
    "acme/private-GGUF": { private: true, files: { "p-Q4_K_M.gguf": bytes(1000, 7) } },
    "evil/dotdot": { files: { "../../escaped.gguf": bytes(1000, 8), "ok-Q4_K_M.gguf": bytes(1000, 8) } },
    "evil/sha": { reportedSha: "../../../../tmp/x", files: { "ok-Q4_K_M.gguf": bytes(1000, 8) } },
    "evil/oid": { reportedLfsOid: { "ok-Q4_K_M.gguf": "../../../outside" }, files: { "ok-Q4_K_M.gguf": bytes(1000, 8) } },
  });
});
afterAll(async () => {
  await hub.close();
});
beforeEach(async () => {
  store = await tempDir("store-");
  hub.resetStats();
});
afterEach(async () => {
  await store.cleanup();
});

const pull = (source: string, extra: Partial<Parameters<typeof pullModel>[0]> = {}) =>
  pullModel({ source, storeDir: store.path, hubUrl: hub.url, retryDelayMs: () => 10, ...extra });

/** Every path under the store, relative, with what it is. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(dir, e.name), r);
      else out.push(e.isSymbolicLink() ? `${r} -> ${await readlink(join(dir, e.name))}` : r);
    }
  };
  await walk(root, "");
  return out;
}

describe("pullModel", () => {
  it("pulls the preferred quantisation of a GGUF repo into the Hugging Face cache layout", async () => {
    const result = await pull("acme/tiny-GGUF");
    const commit = hub.commitOf("acme/tiny-GGUF");
    const sha = hub.sha256Of("acme/tiny-GGUF", "tiny-Q4_K_M.gguf");
    expect(result).toMatchObject({ repo: "acme/tiny-GGUF", commit, id: "acme--tiny-GGUF:Q4_K_M", format: "gguf", quant: "Q4_K_M", fetchedBytes: 256 << 10 });
    expect(await tree(store.path)).toEqual([
      `models--acme--tiny-GGUF/blobs/${sha}`,
      `models--acme--tiny-GGUF/refs/main`,
      `models--acme--tiny-GGUF/snapshots/${commit}/tiny-Q4_K_M.gguf -> ../../blobs/${sha}`,
    ]);
    expect(await readFile(join(store.path, "models--acme--tiny-GGUF/refs/main"), "utf8")).toBe(commit);
    expect(
      createHash("sha256")
        .update(await readFile(result.modelPath))
        .digest("hex"),
    ).toBe(sha);
    // Only the chosen file's bytes crossed the wire.
    expect(hub.stats.bytesServed).toBe(256 << 10);
  });

  it.each([
    ["acme/tiny-GGUF:q8_0", "tiny-Q8_0.gguf", "acme--tiny-GGUF:Q8_0"],
    ["acme/tiny-GGUF:Q2_K", "tiny-Q2_K.gguf", "acme--tiny-GGUF:Q2_K"],
    ["acme/tiny-GGUF:tiny-F16.gguf", "tiny-F16.gguf", "acme--tiny-GGUF:F16"],
    ["acme/tiny-GGUF@main:F16", "tiny-F16.gguf", "acme--tiny-GGUF:F16"],
  ])("%s picks %s", async (source, file, id) => {
    const result = await pull(source);
    expect(result.files.map((f) => f.path)).toEqual([file]);
    expect(result.id).toBe(id);
  });

  it("names the available quantisations when the one asked for is missing", async () => {
    await expect(pull("acme/tiny-GGUF:Q3_K_M")).rejects.toThrow(/no file or quantisation 'Q3_K_M'; available: .*Q4_K_M/);
  });

  it("fetches only config, tokenizer and safetensors weights of a transformers repo", async () => {
    const result = await pull("acme/tiny-st");
    expect(result.format).toBe("safetensors");
    expect(result.id).toBe("acme--tiny-st");
    expect(result.files.map((f) => f.path).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const snapshot = await readdir(result.modelPath);
    expect(snapshot.sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    // pytorch_model.bin, onnx/model.onnx and README.md were never downloaded.
    const resolved = hub.stats.requests.filter((r) => r.method === "GET" && !r.range && (r.path.includes("/resolve/") || r.path.startsWith("/_lfs/")));
    expect(resolved.some((r) => /pytorch_model|onnx|README/.test(r.path))).toBe(false);
  });

  it("does not fetch a file that is already in the cache", async () => {
    await pull("acme/tiny-GGUF");
    hub.resetStats();
    const again = await pull("acme/tiny-GGUF");
    expect(again.fetchedBytes).toBe(0);
    expect(again.files[0]!.reused).toBe(true);
    expect(hub.stats.bytesServed).toBe(0);
  });

  it("resumes after a cut connection without fetching the received bytes again", async () => {
    hub.cutNext("big-Q4_K_M.gguf", 1 << 20);
    const events: PullEvent[] = [];
    const result = await pull("acme/big-GGUF", { onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === "retry")).toHaveLength(1);
    // The second attempt starts where the first one's bytes ended (about 1 MiB: the cut loses what was in flight).
    const starts = events.filter((e) => e.type === "file-start").map((e) => (e as { resumeFrom: number }).resumeFrom);
    expect(starts).toHaveLength(2);
    expect(starts[0]).toBe(0);
    expect(starts[1]).toBeGreaterThan(900_000);
    expect(starts[1]).toBeLessThanOrEqual(1 << 20);
    const ranged = hub.stats.requests.filter((r) => r.path.startsWith("/_lfs/") && r.range);
    expect(ranged.map((r) => r.range)).toEqual([`bytes=${starts[1]}-`]);
    expect(result.fetchedBytes).toBe(big.length);
    expect(Buffer.compare(await readFile(result.modelPath), big)).toBe(0);
  });

  it("resumes an interrupted pull on the next run, from the partial file", async () => {
    hub.cutNext("big-Q4_K_M.gguf", 2 << 20);
    await expect(pull("acme/big-GGUF", { retries: 0 })).rejects.toThrow(/connection .* (lost|closed) after/);
    const blobs = await readdir(join(store.path, "models--acme--big-GGUF/blobs"));
    expect(blobs).toEqual([`${hub.sha256Of("acme/big-GGUF", "big-Q4_K_M.gguf")}.incomplete`]);
    // No snapshot entry points at a partial file.
    expect(await readdir(join(store.path, `models--acme--big-GGUF/snapshots/${hub.commitOf("acme/big-GGUF")}`))).toEqual([]);
    hub.resetStats();
    const result = await pull("acme/big-GGUF");
    expect(result.resumedBytes).toBeGreaterThan(1 << 20);
    expect(result.resumedBytes).toBeLessThanOrEqual(2 << 20);
    expect(hub.stats.bytesServed).toBe(big.length - result.resumedBytes);
    expect(Buffer.compare(await readFile(result.modelPath), big)).toBe(0);
  });

  it("an aborted pull keeps only the partial file, and the next run finishes it", async () => {
    const controller = new AbortController();
    const p = pull("acme/slow-GGUF", {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === "progress") controller.abort(new Error("stop"));
      },
    });
    await expect(p).rejects.toThrow("stop");
    const repoDir = join(store.path, "models--acme--slow-GGUF");
    expect((await readdir(join(repoDir, "blobs"))).every((n) => n.endsWith(".incomplete"))).toBe(true);
    const result = await pull("acme/slow-GGUF");
    expect(result.resumedBytes).toBeGreaterThan(0);
    expect(
      createHash("sha256")
        .update(await readFile(result.modelPath))
        .digest("hex"),
    ).toBe(hub.sha256Of("acme/slow-GGUF", "slow-Q4_K_M.gguf"));
  });

  it("refuses content whose hash does not match, leaving nothing behind", async () => {
    const err = await pull("acme/bad-GGUF").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HashMismatchError);
    expect((err as Error).message).toMatch(/does not match the hub's hash/);
    expect(await tree(store.path)).toEqual([]);
  });

  it.each([
    ["acme/gated-GGUF", undefined, /acme\/gated-GGUF is gated or private.*accept its licence.*HF_TOKEN/],
    ["acme/denied-GGUF", "hf_valid", /acme\/denied-GGUF is gated or private.*token was refused or has no access.*accept its licence/],
    ["acme/private-GGUF", undefined, /acme\/private-GGUF is gated or private.*HF_TOKEN/],
    ["acme/private-GGUF", "hf_wrong", /token was refused/],
  ])("explains a 401/403 from %s (token %s)", async (repo, token, message) => {
    const hubWithTokens =
      token === "hf_wrong" ? await startFakeHub({ "acme/private-GGUF": { private: true, files: { "p-Q4_K_M.gguf": "x" } } }, { tokens: ["hf_right"] }) : hub;
    try {
      const err = await pull(repo, { accessToken: token, hubUrl: hubWithTokens.url }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatedRepoError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toMatch(/^401|HTTP 40[13]/);
      if (token) expect((err as Error).message).not.toContain(token);
    } finally {
      if (hubWithTokens !== hub) await hubWithTokens.close();
    }
  });

  it.each([["../etc/passwd"], ["acme/tiny-GGUF@../../x"], ["acme/tiny-GGUF:../../../escape.gguf"], ["acme/tiny-GGUF:/etc/passwd"], ["/abs/path"], ["acme/tiny--GGUF"]])(
    "refuses the source %s before any request",
    async (source) => {
      await expect(pull(source)).rejects.toBeInstanceOf(InvalidPullSourceError);
      expect(hub.stats.requests).toEqual([]);
    },
  );

  it.each([
    ["evil/dotdot", /listed a file named '\.\.\/\.\.\/escaped\.gguf'/],
    ["evil/sha", /reported '\.\.\/\.\.\/.*' as the commit/],
    ["evil/oid", /listed '\.\.\/\.\.\/\.\.\/outside' as the sha256/],
  ])("refuses hub responses naming paths outside the store: %s", async (repo, message) => {
    const err = await pull(repo).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect((err as Error).message).toMatch(message);
    expect(await tree(store.path)).toEqual([]);
  });

  it("refuses to write through a symlink planted in the store", async () => {
    const outside = await tempDir("outside-");
    try {
      const repoDir = join(store.path, "models--acme--tiny-GGUF");
      await mkdir(repoDir, { recursive: true });
      await symlink(outside.path, join(repoDir, "blobs"));
      await expect(pull("acme/tiny-GGUF")).rejects.toThrow(/is a symlink/);
      expect(await readdir(outside.path)).toEqual([]);
    } finally {
      await outside.cleanup();
    }
  });

  it("replaces a snapshot entry that is a symlink to elsewhere instead of writing through it", async () => {
    const outside = await tempDir("outside-");
    try {
      const victim = join(outside.path, "victim.txt");
      await writeFile(victim, "keep me");
      const snap = join(store.path, `models--acme--tiny-GGUF/snapshots/${hub.commitOf("acme/tiny-GGUF")}`);
      await mkdir(snap, { recursive: true });
      await symlink(victim, join(snap, "tiny-Q4_K_M.gguf"));
      const result = await pull("acme/tiny-GGUF");
      expect(await readFile(victim, "utf8")).toBe("keep me");
      expect(await realpath(result.modelPath)).toMatch(new RegExp(`^${await realpath(store.path)}/models--acme--tiny-GGUF/blobs/`));
      expect((await lstat(result.modelPath)).isSymbolicLink()).toBe(true);
    } finally {
      await outside.cleanup();
    }
  });

  it("two concurrent pulls of the same file download it once", async () => {
    const events: PullEvent[][] = [[], []];
    const [a, b] = await Promise.all([pull("acme/slow-GGUF", { onEvent: (e) => events[0]!.push(e) }), pull("acme/slow-GGUF", { onEvent: (e) => events[1]!.push(e) })]);
    expect(hub.stats.bytesServed).toBe(1 << 20);
    expect([a.files[0]!.reused, b.files[0]!.reused].sort()).toEqual([false, true]);
    expect(events.flat().some((e) => e.type === "waiting")).toBe(true);
    expect(a.modelPath).toBe(b.modelPath);
  });
});
