import { readFileSync } from "node:fs";
import { writeFile, rename, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { Browser } from "./manifestLocations.js";

/** The file beside the launcher that lists the manifests installed for it; the host reads its allow list from them. */
export const RECORD_FILE = "installed.json";

const recordSchema = z.object({
  manifests: z.array(z.object({ browser: z.string(), manifestPath: z.string(), registryKey: z.string().nullable() })),
});
export type InstallRecord = { manifests: { browser: Browser; manifestPath: string; registryKey: string | null }[] };

export function recordPath(launcherDir: string): string {
  return join(launcherDir, RECORD_FILE);
}

/** The record, or an empty one when there is none (or it cannot be read). */
export function readRecord(path: string): InstallRecord {
  try {
    return recordSchema.parse(JSON.parse(readFileSync(path, "utf8"))) as InstallRecord;
  } catch {
    return { manifests: [] };
  }
}

export async function writeRecord(path: string, record: InstallRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, path);
}

const manifestSchema = z.object({
  name: z.string(),
  allowed_origins: z.array(z.string()).optional(),
  allowed_extensions: z.array(z.string()).optional(),
});

/** What the installed manifests allow: Chrome-family origins and Firefox add-on ids, read from each manifest file. */
export function allowList(record: InstallRecord, hostName: string): { origins: Set<string>; extensions: Set<string> } {
  const origins = new Set<string>();
  const extensions = new Set<string>();
  for (const m of record.manifests) {
    try {
      const manifest = manifestSchema.parse(JSON.parse(readFileSync(m.manifestPath, "utf8")));
      if (manifest.name !== hostName) continue;
      for (const o of manifest.allowed_origins ?? []) origins.add(o);
      for (const e of manifest.allowed_extensions ?? []) extensions.add(e);
    } catch {
      // A manifest removed or damaged since: it allows nothing.
    }
  }
  return { origins, extensions };
}
