import { createHash } from "node:crypto";
import { access, constants, readdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { projectRoot } from "./projectRoot.js";

export type PythonSource = "config" | "env" | "data-dir";

export interface PythonLookup {
  /** The interpreter to run the sidecar with; null when none was found. */
  python: string | null;
  source: PythonSource | null;
  /** Every place looked at, with why it was not used (for `doctor` and error messages). */
  tried: { source: PythonSource; path: string; problem: string }[];
}

const PYTHON_ENV = "TABAGENT_PYTHON";
export const SETUP_COMMAND = "tabagent setup python";

/** Same default as native/setup-python.sh. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return env.TABAGENT_DATA_DIR || join(env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share"), "tabagent");
}

const venvInfoSchema = z.object({
  key: z.string(),
  python: z.string(),
  variant: z.string(),
  dev: z.boolean(),
  runtimeRequirementsSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
type VenvInfo = z.infer<typeof venvInfoSchema>;

/** sha256 of native/python/requirements.txt: a venv built from other pins is not used. */
export async function runtimeRequirementsHash(): Promise<string> {
  const text = await readFile(join(projectRoot(), "native", "python", "requirements.txt"));
  return createHash("sha256").update(text).digest("hex");
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the Python that runs the sidecar. Lookup order, first usable wins:
 *  1. config `python` (an interpreter path); 2. env TABAGENT_PYTHON; 3. the newest complete venv under
 *  <data-dir>/python/ built from this version's requirements (what `tabagent setup python` makes).
 * An explicit choice (1, 2) that does not exist is reported, not skipped: the user meant it.
 */
export async function findPythonEnv(options: { configPath?: string; env: NodeJS.ProcessEnv; dataDir?: string }): Promise<PythonLookup> {
  const tried: PythonLookup["tried"] = [];
  const explicit: [PythonSource, string | undefined][] = [
    ["config", options.configPath],
    ["env", options.env[PYTHON_ENV] || undefined],
  ];
  for (const [source, path] of explicit) {
    if (!path) continue;
    if (await isExecutable(path)) return { python: path, source, tried };
    tried.push({ source, path, problem: "not an executable file" });
    return { python: null, source: null, tried };
  }
  const base = join(options.dataDir ?? defaultDataDir(options.env), "python");
  const wanted = await runtimeRequirementsHash();
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    tried.push({ source: "data-dir", path: base, problem: `no venv yet (run \`${SETUP_COMMAND}\`)` });
    return { python: null, source: null, tried };
  }
  const found: { python: string; dev: boolean }[] = [];
  for (const name of names) {
    const dir = join(base, name);
    let info: VenvInfo;
    try {
      info = venvInfoSchema.parse(JSON.parse(await readFile(join(dir, "venv-info.json"), "utf8")));
    } catch {
      continue; // a lock file, or a venv still being made
    }
    const python = join(dir, "bin", "python");
    if (info.runtimeRequirementsSha256 !== wanted) {
      tried.push({ source: "data-dir", path: dir, problem: "built from other requirements (an older or newer TabAgent)" });
    } else if (!(await isExecutable(python))) {
      tried.push({ source: "data-dir", path: dir, problem: "bin/python is missing" });
    } else {
      found.push({ python, dev: info.dev });
    }
  }
  // The runtime-only venv first: it is what a user made; a dev venv (tests, CI) also serves.
  found.sort((a, b) => Number(a.dev) - Number(b.dev));
  if (found[0]) return { python: found[0].python, source: "data-dir", tried };
  if (tried.length === 0) tried.push({ source: "data-dir", path: base, problem: `no venv yet (run \`${SETUP_COMMAND}\`)` });
  return { python: null, source: null, tried };
}

/** The message for a missing interpreter: what was looked at, and the one command that fixes it. */
export function missingPythonHelp(lookup: PythonLookup, engine = "Python"): string {
  const where = lookup.tried.map((t) => `${t.source} ${t.path}: ${t.problem}`).join("; ");
  return `no Python environment for the ${engine} sidecar (${where}). Run \`${SETUP_COMMAND}\` (add --cuda or --cpu to choose the torch build), or set ${PYTHON_ENV} to a Python with the packages in native/python/requirements.txt`;
}
