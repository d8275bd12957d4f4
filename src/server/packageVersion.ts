import { readFileSync } from "node:fs";

let cached: string | null = null;

/** The daemon's version, from package.json (works from src/ under tsx and from dist/). */
export function packageVersion(): string {
  if (cached) return cached;
  for (const rel of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "tabagent" && pkg.version) return (cached = pkg.version);
    } catch {
      // try the next location
    }
  }
  return (cached = "0.0.0");
}
