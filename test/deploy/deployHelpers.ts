// Shared by the deploy tests: paths, running commands (also as an unprivileged user), and small parsers for
// systemd unit files and Dockerfiles.
import { execa } from "execa";
import { startListening as startServeCommand, type ServeProcess } from "../helpers/spawnCli.js";
import { chmodSync, cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

/** The PATH systemd gives system services. */
export const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  all: string;
}

export async function run(file: string, args: string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await execa(file, args, {
    env: options.env ?? {},
    extendEnv: options.env === undefined,
    cwd: options.cwd ?? REPO,
    reject: false,
    all: true,
    stdin: "ignore",
    timeout: options.timeoutMs ?? 60_000,
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), all: String(r.all) };
}

/** Whether a command is on PATH. */
export async function hasCommand(name: string): Promise<boolean> {
  const r = await run("bash", ["-c", `command -v ${name}`]);
  return r.code === 0 && r.stdout.trim() !== "";
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/**
 * Runs a command as an unprivileged user: directly when the tests already run as one, else (CI runs as root) as
 * `nobody` (uid/gid 65534) through util-linux setpriv, with no supplementary groups.
 */
export function runUnprivileged(file: string, args: string[], env: Record<string, string>, cwd: string): Promise<RunResult> {
  if (!isRoot) return run(file, args, { env, cwd });
  return run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", file, ...args], { env, cwd });
}

/**
 * A world-readable temp copy of the files the deploy scripts read (deploy/, package.json, package-lock.json),
 * so an unprivileged user can run them even when the checkout itself is in a private folder (e.g. /root).
 */
export function readableScriptsCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "tabagent-deploy-src-"));
  for (const entry of ["deploy", "package.json", "package-lock.json"]) cpSync(join(REPO, entry), join(dir, entry), { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

// ---------------------------------------------------------------- systemd unit files

export type UnitFile = Map<string, Map<string, string[]>>;

/** Parses a unit file: sections → keys → values in order (a key may repeat). Comments and blank lines are skipped. */
export function parseUnit(text: string): UnitFile {
  const unit: UnitFile = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf("=");
    if (!section || eq <= 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    const values = section.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    section.set(key, values);
  }
  return unit;
}

/** The last value of a key (systemd's rule for single-valued settings), or undefined. */
export function unitValue(unit: UnitFile, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** `Environment=A=1` lines as an object. */
export function unitEnvironment(unit: UnitFile): Record<string, string> {
  const env: Record<string, string> = {};
  for (const value of unit.get("Service")?.get("Environment") ?? []) {
    for (const pair of value.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** systemd time spans as used here: "45", "45s", "2min", "1min 30s". */
export function parseTimespanSeconds(value: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value)) !== null) {
    const n = Number(m[1]);
    const unit = m[2] ?? "s";
    total += unit === "ms" ? n / 1000 : unit === "min" || unit === "m" ? n * 60 : unit === "h" ? n * 3600 : n;
  }
  return total;
}

// ---------------------------------------------------------------- Dockerfiles

export interface DockerInstruction {
  line: number;
  keyword: string;
  args: string;
  /** Index of the build stage (0 = first FROM); -1 before any FROM (global ARGs). */
  stage: number;
}

/** Splits a Dockerfile into instructions: comments dropped, backslash continuations joined. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  const lines = text.split("\n");
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (first.trim() === "" || first.trim().startsWith("#")) continue;
    let joined = first;
    const start = i + 1;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, " ");
      i++;
      if (lines[i]!.trim().startsWith("#")) continue;
      joined += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(joined);
    if (!m) throw new Error(`line ${start}: not a Dockerfile instruction: ${first}`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === "FROM") stage++;
    out.push({ line: start, keyword, args: m[2]!.replace(/\s+/g, " ").trim(), stage });
  }
  return out;
}

/** JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or null for the shell form. */
export function execForm(args: string): string[] | null {
  if (!args.trim().startsWith("[")) return null;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) throw new Error(`not an exec form: ${args}`);
  return parsed;
}

/** Splits a shell command of plain words and "double-quoted" words (what the Dockerfile's RUN lines use). */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(command)) !== null) words.push(m[1] ?? m[2]!);
  return words;
}

/** Starts a daemon command with exactly `env` (nothing inherited) and waits for its "listening" line. */
export function startListening(file: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<ServeProcess> {
  return startServeCommand(file, args, { env, extendEnv: false }, timeoutMs);
}

/** PATH for a child that must find this very node first. */
export function pathWithThisNode(rest: string = process.env.PATH ?? SYSTEMD_PATH): string {
  return `${dirname(process.execPath)}:${rest}`;
}
