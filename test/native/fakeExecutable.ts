import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** Writes a shell script (mode 755 unless told otherwise), creating its folder. */
export async function writeScript(path: string, body: string, mode = 0o755): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return path;
}

/** A stand-in for llama-server: answers --version on stderr, like the real one. */
export function fakeLlamaServer(path: string, label = "fake", mode = 0o755): Promise<string> {
  return writeScript(path, `echo "version: 4242 (${label})" >&2\necho "built with fake cc" >&2\nexit 0`, mode);
}
