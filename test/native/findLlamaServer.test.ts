import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultBuildCacheDir, findLlamaServer, missingBinaryHelp, type FindLlamaServerOptions } from "../../src/native/findLlamaServer.js";
import { fakeLlamaServer } from "./fakeExecutable.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "tabagent-find-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A complete build as native/build-llama-server.sh leaves it. */
async function cachedBuild(key: string, variant: string, date: string): Promise<string> {
  const bin = await fakeLlamaServer(join(root, "cache", key, "bin", "llama-server"), key);
  await writeFile(join(root, "cache", key, "build-info.json"), JSON.stringify({ variant, date, binary: "bin/llama-server" }));
  return bin;
}

/** Every source holds a standard binary; each test removes what it does not want. */
async function everySource() {
  return {
    config: await fakeLlamaServer(join(root, "config", "llama-server")),
    env: await fakeLlamaServer(join(root, "env", "llama-server")),
    cache: await cachedBuild("standard-aaa", "standard", "2026-01-01T00:00:00Z"),
    release: await fakeLlamaServer(join(root, "Release", "cpu", "linux", "llama-server-standard")),
    path: await fakeLlamaServer(join(root, "pathdir", "llama-server")),
  };
}

function options(extra: Partial<FindLlamaServerOptions> = {}): FindLlamaServerOptions {
  return {
    env: {},
    cacheDir: join(root, "cache"),
    releaseDir: join(root, "Release"),
    platform: "linux",
    pathDirs: [join(root, "empty"), join(root, "pathdir")],
    ...extra,
  };
}

describe("findLlamaServer", () => {
  it("follows config → env → build cache → release folder → PATH", async () => {
    const bins = await everySource();
    const env = { TABAGENT_LLAMA_SERVER: bins.env };

    expect(await findLlamaServer("standard", options({ configPath: bins.config, env }))).toMatchObject({ path: bins.config, source: "config", tried: [] });
    expect(await findLlamaServer("standard", options({ env }))).toMatchObject({ path: bins.env, source: "env" });
    expect(await findLlamaServer("standard", options())).toMatchObject({ path: bins.cache, source: "build-cache" });
    await rm(join(root, "cache"), { recursive: true });
    expect(await findLlamaServer("standard", options())).toMatchObject({ path: bins.release, source: "release-dir" });
    await rm(join(root, "Release"), { recursive: true });
    expect(await findLlamaServer("standard", options())).toMatchObject({ path: bins.path, source: "path" });
  });

  it("skips a non-executable file or a folder, says why, and goes on", async () => {
    const notExecutable = await fakeLlamaServer(join(root, "env", "llama-server"), "x", 0o644);
    const fallback = await fakeLlamaServer(join(root, "pathdir", "llama-server"));
    const result = await findLlamaServer("standard", options({ configPath: join(root, "env"), env: { TABAGENT_LLAMA_SERVER: notExecutable } }));
    expect(result).toMatchObject({ path: fallback, source: "path" });
    expect(result.tried).toEqual([
      { source: "config", path: join(root, "env"), problem: "is a folder, not a file" },
      { source: "env", path: notExecutable, problem: "is not executable (mode 644)" },
      { source: "build-cache", path: join(root, "cache"), problem: "no complete standard build" },
      { source: "release-dir", path: join(root, "Release", "cpu", "linux", "llama-server-standard"), problem: "does not exist" },
    ]);
  });

  it("uses the env var of the variant only", async () => {
    const standard = await fakeLlamaServer(join(root, "s", "llama-server"));
    const bitnet = await fakeLlamaServer(join(root, "b", "llama-server"));
    const env = { TABAGENT_LLAMA_SERVER: standard, TABAGENT_LLAMA_SERVER_BITNET: bitnet };
    expect((await findLlamaServer("standard", options({ env }))).path).toBe(standard);
    expect((await findLlamaServer("bitnet", options({ env }))).path).toBe(bitnet);
    expect((await findLlamaServer("bitnet", options({ env: { TABAGENT_LLAMA_SERVER: standard } }))).path).toBeNull();
  });

  it("picks the newest complete build of the variant from the cache", async () => {
    await cachedBuild("standard-old", "standard", "2026-01-01T00:00:00Z");
    const newest = await cachedBuild("standard-new", "standard", "2026-03-01T00:00:00Z");
    const bitnet = await cachedBuild("bitnet-x", "bitnet", "2026-06-01T00:00:00Z");
    // Unfinished work never counts: a build folder without build-info.json, and the script's temp folder.
    await fakeLlamaServer(join(root, "cache", "standard-unfinished", "bin", "llama-server"));
    await fakeLlamaServer(join(root, "cache", ".tmp", "build.1", "stage", "bin", "llama-server"));
    expect(await findLlamaServer("standard", options())).toMatchObject({ path: newest, source: "build-cache", tried: [] });
    expect(await findLlamaServer("bitnet", options())).toMatchObject({ path: bitnet, source: "build-cache" });
  });

  it("falls back to an older build when the newest binary is broken", async () => {
    const older = await cachedBuild("standard-old", "standard", "2026-01-01T00:00:00Z");
    const broken = await cachedBuild("standard-new", "standard", "2026-03-01T00:00:00Z");
    await rm(broken);
    const result = await findLlamaServer("standard", options());
    expect(result).toMatchObject({ path: older, source: "build-cache" });
    expect(result.tried).toEqual([{ source: "build-cache", path: broken, problem: "does not exist" }]);
  });

  it("defaults the cache folder like the build script", () => {
    expect(defaultBuildCacheDir({ TABAGENT_CACHE_DIR: "/c" })).toBe("/c/llama-server");
    expect(defaultBuildCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/h" })).toBe("/x/tabagent/llama-server");
    expect(defaultBuildCacheDir({ HOME: "/h" })).toBe("/h/.cache/tabagent/llama-server");
  });

  it("prefers the release folder's gpu/<platform> over cpu/<platform>, named per platform", async () => {
    const cpu = await fakeLlamaServer(join(root, "Release", "cpu", "macos", "llama-server-bitnet"));
    const opts = options({ platform: "darwin", env: { TABAGENT_RELEASE_DIR: join(root, "Release") }, releaseDir: undefined });
    expect(await findLlamaServer("bitnet", opts)).toMatchObject({ path: cpu, source: "release-dir" });

    // An empty gpu folder is a rejected candidate, not an error.
    await mkdir(join(root, "Release", "gpu", "macos"), { recursive: true });
    const withEmptyGpu = await findLlamaServer("bitnet", opts);
    expect(withEmptyGpu).toMatchObject({ path: cpu, source: "release-dir" });
    expect(withEmptyGpu.tried).toContainEqual({
      source: "release-dir",
      path: join(root, "Release", "gpu", "macos", "llama-server-bitnet"),
      problem: "does not exist",
    });

    const gpu = await fakeLlamaServer(join(root, "Release", "gpu", "macos", "llama-server-bitnet"));
    expect(await findLlamaServer("bitnet", opts)).toMatchObject({ path: gpu, source: "release-dir" });

    const windows = await fakeLlamaServer(join(root, "Release", "cpu", "windows", "llama-server-standard.exe"), "w", 0o644);
    expect(await findLlamaServer("standard", options({ platform: "win32" }))).toMatchObject({ path: windows, source: "release-dir" });
  });

  it("on PATH takes llama-server for standard but only llama-server-bitnet for bitnet", async () => {
    const standard = await fakeLlamaServer(join(root, "pathdir", "llama-server"));
    expect(await findLlamaServer("standard", options())).toMatchObject({ path: standard, source: "path" });
    const missing = await findLlamaServer("bitnet", options());
    expect(missing.path).toBeNull();
    expect(missing.tried).toContainEqual({ source: "path", path: "llama-server-bitnet", problem: "not found in PATH (2 folders)" });

    const bitnet = await fakeLlamaServer(join(root, "pathdir2", "llama-server-bitnet"));
    expect(await findLlamaServer("bitnet", options({ env: { PATH: `${join(root, "pathdir")}:${join(root, "pathdir2")}` }, pathDirs: undefined }))).toMatchObject({
      path: bitnet,
      source: "path",
    });
  });

  it("returns null with every reason when nothing is found, and help that names the ways out", async () => {
    const result = await findLlamaServer("standard", options({ configPath: join(root, "nope"), env: { TABAGENT_LLAMA_SERVER: join(root, "nope2") } }));
    expect(result.path).toBeNull();
    expect(result.tried.map((t) => t.source)).toEqual(["config", "env", "build-cache", "release-dir", "path"]);
    expect(result.tried.every((t) => t.problem.length > 0)).toBe(true);

    const help = missingBinaryHelp("standard");
    expect(help).toMatch(/llama-server/);
    expect(help).toMatch(/native\/build-llama-server\.sh/);
    expect(help).toMatch(/TABAGENT_LLAMA_SERVER\b/);
    expect(help).toMatch(/cpu\/<linux\|macos\|windows>/);
    const bitnetHelp = missingBinaryHelp("bitnet");
    expect(bitnetHelp).toMatch(/llama-server-bitnet/);
    expect(bitnetHelp).toMatch(/build-llama-server\.sh --variant bitnet`.*--source <BitNet checkout>/);
    expect(bitnetHelp).toMatch(/TABAGENT_LLAMA_SERVER_BITNET/);
    expect(bitnetHelp).not.toMatch(/\n/);
  });
});
