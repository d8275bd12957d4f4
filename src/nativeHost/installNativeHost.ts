import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, posix, win32 } from "node:path";
import { promisify } from "node:util";
import { HOST_NAME } from "./nativeMessagingLimits.js";
import { readRecord, recordPath, writeRecord, type InstallRecord } from "./installRecord.js";
import {
  CHROME_EXTENSION_ID,
  FIREFOX_EXTENSION_ID,
  hostManifest,
  launcherDir,
  launcherName,
  manifestLocation,
  type Browser,
  type HostPlatform,
  type InstallScope,
  type ManifestLocation,
} from "./manifestLocations.js";

export interface InstallTarget {
  platform: HostPlatform;
  scope: InstallScope;
  home: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  /** Instead of each browser's standard folder: write the manifest into this NativeMessagingHosts folder. */
  dir?: string;
}

/** Writes or deletes the Windows registry key naming a manifest (`reg.exe`, no shell). */
export type RegistryEditor = (op: { action: "set"; key: string; value: string } | { action: "delete"; key: string }) => Promise<void>;

export const regExe: RegistryEditor = async (op) => {
  const run = promisify(execFile);
  if (op.action === "set") await run("reg", ["add", op.key, "/ve", "/t", "REG_SZ", "/d", op.value, "/f"]);
  else await run("reg", ["delete", op.key, "/f"]).catch(() => undefined);
};

function locate(browser: Browser, t: InstallTarget, dir: string): ManifestLocation {
  const loc = manifestLocation(browser, { platform: t.platform, scope: t.scope, home: t.home, launcherDir: dir });
  if (!t.dir) return loc;
  const file = `${HOST_NAME}.json`;
  return { ...loc, manifestPath: t.platform === "win32" ? win32.join(t.dir, file) : posix.join(t.dir, file), registryKey: null };
}

const quoteSh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The launcher the manifests name: runs this CLI's `native-host` with the record (and config), passing the browser's arguments. */
export function launcherScript(platform: HostPlatform, command: string[], record: string, configFile?: string): string {
  const args = [...command, "native-host", "--record", record, ...(configFile ? ["--config", configFile] : [])];
  if (platform === "win32") return `@echo off\r\n${args.map((a) => `"${a}"`).join(" ")} %*\r\n`;
  return `#!/bin/sh\n# Written by \`tabagent native-host install\`; browsers start it for their extensions.\nexec ${args.map(quoteSh).join(" ")} "$@"\n`;
}

/** Which of the ids each browser takes: Chrome-family ids for Chrome, Chromium, Edge and Brave; add-on ids for Firefox. */
export function idsFor(browser: Browser, ids: string[]): string[] {
  return ids.filter((id) => (browser === "firefox" ? FIREFOX_EXTENSION_ID : CHROME_EXTENSION_ID).test(id));
}

export interface InstallResult {
  launcher: string;
  installed: { browser: Browser; manifestPath: string; registryKey: string | null; ids: string[] }[];
  skipped: { browser: Browser; reason: string }[];
}

/**
 * Writes the launcher, then each browser's manifest (and registry key on Windows) allowing `extensionIds`, and
 * records them. `command` runs the CLI (node and bin/tabagent); the launcher passes `--config FILE` when one is given.
 */
export async function installNativeHost(
  t: InstallTarget,
  browsers: Browser[],
  extensionIds: string[],
  command: string[],
  options: { configFile?: string; registry?: RegistryEditor } = {},
): Promise<InstallResult> {
  const registry = options.registry ?? regExe;
  const dir = launcherDir(t);
  const launcher = join(dir, launcherName(t.platform));
  const record = recordPath(dir);
  const result: InstallResult = { launcher, installed: [], skipped: [] };
  const plan: { loc: ManifestLocation; ids: string[] }[] = [];
  for (const browser of browsers) {
    const ids = idsFor(browser, extensionIds);
    if (ids.length === 0)
      result.skipped.push({ browser, reason: browser === "firefox" ? "no Firefox add-on id (name@domain or {GUID})" : "no Chrome extension id (32 letters a-p)" });
    else plan.push({ loc: locate(browser, t, dir), ids });
  }
  if (plan.length === 0) return result;
  await mkdir(dir, { recursive: true });
  await writeAtomic(launcher, launcherScript(t.platform, command, record, options.configFile), 0o755);
  const current = readRecord(record);
  for (const { loc, ids } of plan) {
    await mkdir(dirname(loc.manifestPath), { recursive: true });
    await writeAtomic(loc.manifestPath, `${JSON.stringify(hostManifest(loc.browser, launcher, ids), null, 2)}\n`, 0o644);
    if (loc.registryKey) await registry({ action: "set", key: loc.registryKey, value: loc.manifestPath });
    current.manifests = current.manifests.filter((m) => m.manifestPath !== loc.manifestPath);
    current.manifests.push({ browser: loc.browser, manifestPath: loc.manifestPath, registryKey: loc.registryKey });
    result.installed.push({ browser: loc.browser, manifestPath: loc.manifestPath, registryKey: loc.registryKey, ids });
  }
  await writeRecord(record, current);
  return result;
}

/** Removes the browsers' manifests (only files that name this host) and registry keys; the launcher goes with the last. */
export async function uninstallNativeHost(t: InstallTarget, browsers: Browser[], registry: RegistryEditor = regExe): Promise<{ removed: string[] }> {
  const dir = launcherDir(t);
  const record = recordPath(dir);
  const current = readRecord(record);
  const removed: string[] = [];
  for (const browser of browsers) {
    const loc = locate(browser, t, dir);
    if (manifestName(loc.manifestPath) === HOST_NAME) {
      await rm(loc.manifestPath, { force: true });
      removed.push(loc.manifestPath);
    }
    if (loc.registryKey) await registry({ action: "delete", key: loc.registryKey });
    current.manifests = current.manifests.filter((m) => m.manifestPath !== loc.manifestPath);
  }
  if (current.manifests.length === 0) {
    await rm(record, { force: true });
    await rm(join(dir, launcherName(t.platform)), { force: true });
  } else await writeRecord(record, current);
  return { removed };
}

interface ManifestFile {
  name?: string;
  path?: string;
  allowed_origins?: string[];
  allowed_extensions?: string[];
}

function readManifest(path: string): ManifestFile | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as ManifestFile;
  } catch {
    return null;
  }
}

function manifestName(path: string): string | null {
  return readManifest(path)?.name ?? null;
}

export interface StatusRow {
  browser: Browser;
  scope: InstallScope;
  manifestPath: string;
  registryKey: string | null;
  installed: boolean;
  /** The launcher the manifest names, and whether it exists. */
  launcher: string | null;
  launcherExists: boolean;
  allowed: string[];
}

/** Every browser and scope on this platform, plus manifests recorded in other folders (--dir installs). */
export function nativeHostStatus(t: Omit<InstallTarget, "scope" | "dir">, browsers: readonly Browser[]): StatusRow[] {
  const rows: StatusRow[] = [];
  const seen = new Set<string>();
  const add = (browser: Browser, scope: InstallScope, manifestPath: string, registryKey: string | null) => {
    if (seen.has(manifestPath)) return;
    seen.add(manifestPath);
    const manifest = readManifest(manifestPath);
    const ours = manifest?.name === HOST_NAME;
    rows.push({
      browser,
      scope,
      manifestPath,
      registryKey,
      installed: ours,
      launcher: ours ? (manifest?.path ?? null) : null,
      launcherExists: ours && typeof manifest?.path === "string" && existsSync(manifest.path),
      allowed: ours ? [...(manifest?.allowed_origins ?? []), ...(manifest?.allowed_extensions ?? [])] : [],
    });
  };
  for (const scope of ["user", "system"] as const) {
    const dir = launcherDir({ ...t, scope });
    for (const b of browsers) {
      const loc = manifestLocation(b, { platform: t.platform, scope, home: t.home, launcherDir: dir });
      add(b, scope, loc.manifestPath, loc.registryKey);
    }
    for (const m of readRecord(recordPath(dir)).manifests) if (browsers.includes(m.browser)) add(m.browser, scope, m.manifestPath, m.registryKey);
  }
  return rows;
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

export type { InstallRecord };
