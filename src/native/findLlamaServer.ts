import { constants } from "node:fs";
import { access, readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter as hostDelimiter, join, resolve } from "node:path";

export type LlamaServerVariant = "standard" | "bitnet";
export type LlamaServerSource = "config" | "env" | "build-cache" | "release-dir" | "path";

/** A candidate that was looked at and rejected, with the reason. */
export interface LlamaServerCandidate {
  source: LlamaServerSource;
  path: string;
  problem: string;
}

type FindLlamaServerResult = { path: string; source: LlamaServerSource; tried: LlamaServerCandidate[] } | { path: null; tried: LlamaServerCandidate[] };

export interface FindLlamaServerOptions {
  /** The model's own `llamaServerPath` from the config file (relative paths resolve against the cwd). */
  configPath?: string;
  env: NodeJS.ProcessEnv;
  /** The build script's cache folder; default: {@link defaultBuildCacheDir}. */
  cacheDir?: string;
  /** Folder laid out as `cpu/<platform>/` and `gpu/<platform>/`; default: `TABAGENT_RELEASE_DIR`. */
  releaseDir?: string;
  platform?: NodeJS.Platform;
  /** Folders searched like PATH; default: the env's PATH. */
  pathDirs?: readonly string[];
}

const LLAMA_SERVER_ENV: Record<LlamaServerVariant, string> = {
  standard: "TABAGENT_LLAMA_SERVER",
  bitnet: "TABAGENT_LLAMA_SERVER_BITNET",
};
const RELEASE_DIR_ENV = "TABAGENT_RELEASE_DIR";

/** Same default as native/build-llama-server.sh, so the daemon finds what the script built. */
export function defaultBuildCacheDir(env: NodeJS.ProcessEnv): string {
  const base = env.TABAGENT_CACHE_DIR || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "tabagent");
  return join(base, "llama-server");
}

/** The release folders name platforms the way people do, not the way Node does. */
function releasePlatformName(platform: NodeJS.Platform): string {
  if (platform === "darwin") return "macos";
  if (platform === "win32") return "windows";
  return platform;
}

/**
 * Finds the llama-server binary for a variant. Lookup order, first usable candidate wins:
 *  1. the model's config path (an explicit choice beats everything else);
 *  2. the env var: TABAGENT_LLAMA_SERVER (standard) or TABAGENT_LLAMA_SERVER_BITNET (bitnet);
 *  3. the native build cache: the newest complete build of this variant (by build-info.json date);
 *  4. the release folder (TABAGENT_RELEASE_DIR): gpu/<platform>/ first when present, then cpu/<platform>/,
 *     each holding llama-server-<variant>[.exe];
 *  5. PATH: `llama-server` for standard; for bitnet only `llama-server-bitnet` (a plain llama-server on PATH is
 *     the standard build and cannot run BitNet I2_S/TL models).
 * A candidate must be an executable file; every rejected one is reported in `tried` with the reason.
 */
export async function findLlamaServer(variant: LlamaServerVariant, options: FindLlamaServerOptions): Promise<FindLlamaServerResult> {
  const { env } = options;
  const platform = options.platform ?? process.platform;
  const exe = platform === "win32" ? ".exe" : "";
  const tried: LlamaServerCandidate[] = [];

  const check = async (source: LlamaServerSource, path: string): Promise<boolean> => {
    const problem = await executableProblem(path, platform);
    if (problem === null) return true;
    tried.push({ source, path, problem });
    return false;
  };

  if (options.configPath) {
    const path = resolve(options.configPath);
    if (await check("config", path)) return { path, source: "config", tried };
  }

  const envName = LLAMA_SERVER_ENV[variant];
  const fromEnv = env[envName];
  if (fromEnv) {
    const path = resolve(fromEnv);
    if (await check("env", path)) return { path, source: "env", tried };
  }

  const cacheDir = options.cacheDir ?? defaultBuildCacheDir(env);
  const builds = await listCachedBuilds(cacheDir, variant, tried);
  for (const build of builds) {
    if (await check("build-cache", build.binary)) return { path: build.binary, source: "build-cache", tried };
  }
  if (builds.length === 0) tried.push({ source: "build-cache", path: cacheDir, problem: `no complete ${variant} build` });

  const releaseDir = options.releaseDir ?? env[RELEASE_DIR_ENV];
  if (releaseDir) {
    const plat = releasePlatformName(platform);
    const name = `llama-server-${variant}${exe}`;
    const gpuDir = join(resolve(releaseDir), "gpu", plat);
    // The GPU folder is optional; only a binary inside an existing one counts as a candidate.
    if (await isDirectory(gpuDir)) {
      const path = join(gpuDir, name);
      if (await check("release-dir", path)) return { path, source: "release-dir", tried };
    }
    const path = join(resolve(releaseDir), "cpu", plat, name);
    if (await check("release-dir", path)) return { path, source: "release-dir", tried };
  }

  const name = `${variant === "standard" ? "llama-server" : "llama-server-bitnet"}${exe}`;
  const dirs = options.pathDirs ?? splitPath(env, platform);
  let seen = false;
  for (const dir of dirs) {
    const path = join(resolve(dir), name);
    // Missing entries are the normal case on PATH: only report files that exist but cannot run.
    if (!(await exists(path))) continue;
    seen = true;
    if (await check("path", path)) return { path, source: "path", tried };
  }
  if (!seen) tried.push({ source: "path", path: name, problem: `not found in PATH (${dirs.length} folders)` });

  return { path: null, tried };
}

/**
 * The help text for a 503 when no binary is found: names the binary and every way to provide it.
 */
export function missingBinaryHelp(variant: LlamaServerVariant): string {
  const envName = LLAMA_SERVER_ENV[variant];
  if (variant === "bitnet") {
    return (
      "No llama-server-bitnet binary was found (the llama-server of Microsoft's BitNet fork, needed for BitNet " +
      "I2_S/TL1/TL2 models). Build it with `native/build-llama-server.sh --variant bitnet` (from " +
      "../shared/third_party/BitNet-c82b5e6.tar.xz, or add `--source <BitNet checkout>`; needs cmake, ninja, python3 " +
      "and clang), or set " +
      `${envName} to an existing binary, or place llama-server-bitnet in ` +
      `$${RELEASE_DIR_ENV}/cpu/<linux|macos|windows>/ (gpu/<platform>/ is tried first), or put llama-server-bitnet ` +
      "on PATH. See docs/native.md."
    );
  }
  return (
    "No llama-server binary was found. Build it with `native/build-llama-server.sh` (needs cmake, ninja and a C++ " +
    "compiler; add `--cmake-flag -DGGML_CUDA=ON` or `-DGGML_VULKAN=ON` for a GPU build), or set " +
    `${envName} to an existing llama-server, or place llama-server-standard in ` +
    `$${RELEASE_DIR_ENV}/cpu/<linux|macos|windows>/ (gpu/<platform>/ is tried first), or put llama-server on PATH. ` +
    "See docs/native.md."
  );
}

interface CachedBuild {
  binary: string;
  date: number;
  key: string;
}

/** Complete builds of a variant, newest first. A folder without build-info.json is not a finished build. */
async function listCachedBuilds(cacheDir: string, variant: LlamaServerVariant, tried: LlamaServerCandidate[]): Promise<CachedBuild[]> {
  let entries: string[];
  try {
    entries = await readdir(cacheDir);
  } catch {
    return [];
  }
  const builds: CachedBuild[] = [];
  for (const key of entries) {
    if (key.startsWith(".")) continue; // .tmp (builds in progress) and .locks
    const infoPath = join(cacheDir, key, "build-info.json");
    let info: unknown;
    try {
      info = JSON.parse(await readFile(infoPath, "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      tried.push({ source: "build-cache", path: infoPath, problem: `unreadable build-info.json: ${(err as Error).message}` });
      continue;
    }
    if (typeof info !== "object" || info === null) continue;
    const record = info as Record<string, unknown>;
    if (record.variant !== variant) continue;
    const binary = join(cacheDir, key, typeof record.binary === "string" ? record.binary : "bin/llama-server");
    const date = typeof record.date === "string" ? Date.parse(record.date) : Number.NaN;
    builds.push({ binary, date: Number.isNaN(date) ? 0 : date, key });
  }
  return builds.sort((a, b) => b.date - a.date || a.key.localeCompare(b.key));
}

/** Why a path cannot be run, or null when it can. */
async function executableProblem(path: string, platform: NodeJS.Platform): Promise<string | null> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? (err as Error).message})`;
  }
  if (info.isDirectory()) return "is a folder, not a file";
  if (!info.isFile()) return "is not a regular file";
  if (platform === "win32") return null; // Windows has no execute bit
  try {
    await access(path, constants.X_OK);
    return null;
  } catch {
    return `is not executable (mode ${(info.mode & 0o777).toString(8)})`;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function splitPath(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string[] {
  const raw = env.PATH ?? env.Path ?? "";
  const sep = platform === "win32" ? ";" : platform === process.platform ? hostDelimiter : ":";
  return raw.split(sep).filter((dir) => dir.length > 0);
}
