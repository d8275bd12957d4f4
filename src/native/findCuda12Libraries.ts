import { existsSync, readdirSync } from "node:fs";
import { constants, homedir } from "node:os";
import { delimiter, join } from "node:path";

/**
 * The CUDA 12 libraries onnxruntime-node's CUDA provider (a CUDA 12 + cuDNN 9 build) links against. A machine with
 * only CUDA 13 lacks them; PyPI's nvidia-*-cu12 wheels carry them (site-packages/nvidia/<part>/lib).
 */
export const CUDA12_LIBRARIES = ["libcudart.so.12", "libcublasLt.so.12", "libcublas.so.12", "libcufft.so.11", "libcurand.so.10", "libcudnn.so.9"] as const;

/** The wheels that carry them, for the help text. */
export const CUDA12_WHEELS = "nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cufft-cu12 nvidia-curand-cu12 nvidia-cudnn-cu12";

export interface Cuda12Lookup {
  /** Every library found. */
  ok: boolean;
  /** soname -> the file found. */
  found: Record<string, string>;
  missing: string[];
  /** The folders looked in, in order. */
  searched: string[];
  /** One line for doctor, the log and /v1/models. */
  reason: string;
}

export interface FindCuda12Options {
  env: NodeJS.ProcessEnv;
  /** Python prefixes whose site-packages may hold nvidia-*-cu12 wheels (venvs); default: the daemon's venvs. */
  pythonPrefixes?: string[];
  /** The system folders; default the usual CUDA and distro ones (tests pass []). */
  systemDirs?: string[];
}

const SYSTEM_DIRS = ["/usr/local/cuda-12/lib64", "/usr/local/cuda-12/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"];

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** site-packages/nvidia/<part>/lib of each prefix (lib/python3.*, both site- and dist-packages). */
function wheelDirs(prefix: string): string[] {
  const out: string[] = [];
  for (const py of list(join(prefix, "lib")).filter((n) => n.startsWith("python3"))) {
    for (const kind of ["site-packages", "dist-packages"]) {
      const nvidia = join(prefix, "lib", py, kind, "nvidia");
      for (const part of list(nvidia)) out.push(join(nvidia, part, "lib"));
    }
  }
  return out;
}

/** The daemon's own venvs (native/setup-python.sh puts them under the data folder) and the user's pip prefix. */
function defaultPrefixes(env: NodeJS.ProcessEnv): string[] {
  const data = env.TABAGENT_DATA_DIR ?? join(env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "tabagent");
  const venvs = list(join(data, "python")).map((v) => join(data, "python", v));
  return [...venvs, join(homedir(), ".local"), "/usr/local", "/usr"];
}

/**
 * Looks for the CUDA 12 libraries: TABAGENT_CUDA12_LIBS (folders), LD_LIBRARY_PATH, nvidia-*-cu12 wheels in the
 * given Python prefixes, then the system's CUDA 12 and library folders. Says which are missing and where it looked.
 */
export function findCuda12Libraries(options: FindCuda12Options): Cuda12Lookup {
  const split = (v: string | undefined) => (v ?? "").split(delimiter).filter((d) => d !== "");
  const searched = [
    ...split(options.env.TABAGENT_CUDA12_LIBS),
    ...split(options.env.LD_LIBRARY_PATH),
    ...(options.pythonPrefixes ?? defaultPrefixes(options.env)).flatMap(wheelDirs),
    ...(options.systemDirs ?? SYSTEM_DIRS),
  ].filter((d, i, all) => all.indexOf(d) === i);
  const found: Record<string, string> = {};
  for (const soname of CUDA12_LIBRARIES) {
    for (const dir of searched) {
      const path = join(dir, soname);
      if (existsSync(path)) {
        found[soname] = path;
        break;
      }
    }
  }
  const missing = CUDA12_LIBRARIES.filter((s) => found[s] === undefined);
  const ok = missing.length === 0;
  const reason = ok
    ? `CUDA 12 libraries found (${[...new Set(Object.values(found).map((p) => p.slice(0, p.lastIndexOf("/"))))].join(", ")})`
    : `onnxruntime-node's CUDA provider needs CUDA 12 libraries; missing ${missing.join(", ")} ` +
      `(looked in ${searched.length} folders: TABAGENT_CUDA12_LIBS, LD_LIBRARY_PATH, nvidia-*-cu12 wheels, system CUDA 12). ` +
      `Install them with \`pip install ${CUDA12_WHEELS}\` (into the sidecar venv or ~/.local), or point TABAGENT_CUDA12_LIBS at their folders`;
  return { ok, found, missing, searched, reason };
}

/**
 * Loads the found libraries into this process (RTLD_GLOBAL | RTLD_NODELETE), so the CUDA provider's own dlopen by
 * soname finds them without LD_LIBRARY_PATH (which the loader reads only at process start). cuDNN's sub-libraries in
 * the same folder are loaded too: cuDNN 9 opens them lazily by name. Returns the libraries that failed to load.
 */
export function preloadCuda12Libraries(lookup: Cuda12Lookup, dlopen: (path: string) => void = nodeDlopen): string[] {
  const failed: string[] = [];
  const paths = CUDA12_LIBRARIES.flatMap((s) => (lookup.found[s] ? [lookup.found[s]] : []));
  const cudnn = lookup.found["libcudnn.so.9"];
  if (cudnn) {
    const dir = cudnn.slice(0, cudnn.lastIndexOf("/"));
    for (const name of list(dir)
      .filter((n) => /^libcudnn_.*\.so\.9$/.test(n))
      .sort())
      paths.push(join(dir, name));
  }
  for (const path of paths) {
    try {
      dlopen(path);
    } catch (err) {
      failed.push(`${path}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  return failed;
}

function nodeDlopen(path: string): void {
  // Node does not export RTLD_NODELETE; glibc's value is 0x1000.
  const { RTLD_NOW = 2, RTLD_GLOBAL = 256 } = constants.dlopen as Record<string, number | undefined>;
  const RTLD_NODELETE = 0x1000;
  try {
    process.dlopen({ exports: {} }, path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
  } catch (err) {
    // A plain library is not a Node addon: dlopen succeeded, the addon check did not, and RTLD_NODELETE keeps it loaded.
    if (!/did not self-register/i.test((err as Error).message)) throw err;
  }
}
