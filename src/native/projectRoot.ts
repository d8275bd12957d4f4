import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | null = null;

/** The package folder (holding native/), from src/ under tsx or from dist/src/ after a build. */
export function projectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "native"))) return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error(`cannot find the package folder above ${fileURLToPath(import.meta.url)}`);
}
