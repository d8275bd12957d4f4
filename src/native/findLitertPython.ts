import { createHash } from "node:crypto";
import { access, constants, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { defaultDataDir } from "./findPythonEnv.js";
import { projectRoot } from "./projectRoot.js";

export const LITERT_SETUP_COMMAND = "tabagent setup litert";
const LITERT_PYTHON_ENV = "TABAGENT_LITERT_PYTHON";

export interface LitertPythonLookup {
  python: string | null;
  /** The user named this interpreter (env): a missing one is theirs to fix, never replaced by a setup. */
  explicit: boolean;
  tried: { path: string; problem: string }[];
}

const venvInfoSchema = z.object({ engine: z.literal("litert"), dev: z.boolean(), runtimeRequirementsSha256: z.string().regex(/^[0-9a-f]{64}$/) });

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The interpreter of the LiteRT engine: TABAGENT_LITERT_PYTHON, else the newest complete venv under
 * <data-dir>/python-litert/ built from this version's requirements-litert.txt (what `tabagent setup litert` and the
 * daemon's automatic setup make; a dev venv also serves).
 */
export async function findLitertPython(options: { env: NodeJS.ProcessEnv; dataDir?: string }): Promise<LitertPythonLookup> {
  const named = options.env[LITERT_PYTHON_ENV];
  if (named) {
    if (await isExecutable(named)) return { python: named, explicit: true, tried: [] };
    return { python: null, explicit: true, tried: [{ path: named, problem: `${LITERT_PYTHON_ENV} names no executable file` }] };
  }
  const base = join(options.dataDir ?? defaultDataDir(options.env), "python-litert");
  const wanted = createHash("sha256")
    .update(await readFile(join(projectRoot(), "native", "python", "requirements-litert.txt")))
    .digest("hex");
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return { python: null, explicit: false, tried: [{ path: base, problem: `no venv yet (run \`${LITERT_SETUP_COMMAND}\`)` }] };
  }
  const tried: LitertPythonLookup["tried"] = [];
  const found: { python: string; dev: boolean }[] = [];
  for (const name of names) {
    const dir = join(base, name);
    let info;
    try {
      info = venvInfoSchema.parse(JSON.parse(await readFile(join(dir, "venv-info.json"), "utf8")));
    } catch {
      continue; // a lock file, or a venv still being made
    }
    const python = join(dir, "bin", "python");
    if (info.runtimeRequirementsSha256 !== wanted) tried.push({ path: dir, problem: "built from other requirements" });
    else if (!(await isExecutable(python))) tried.push({ path: dir, problem: "bin/python is missing" });
    else found.push({ python, dev: info.dev });
  }
  found.sort((a, b) => Number(a.dev) - Number(b.dev));
  if (found[0]) return { python: found[0].python, explicit: false, tried };
  if (tried.length === 0) tried.push({ path: base, problem: `no venv yet (run \`${LITERT_SETUP_COMMAND}\`)` });
  return { python: null, explicit: false, tried };
}
