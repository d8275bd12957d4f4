import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { detectionSchema, type Detection } from "../core/detectionSchema.js";
import { DetectionCache } from "../registry/DetectionCache.js";

const fileSchema = z.object({ version: z.literal(1), entries: z.array(z.unknown()).max(20_000) });
const entrySchema = z.tuple([z.string(), z.array(detectionSchema)]);

/**
 * Detections remembered between CLI runs (`tabagent models`, `ls`): keyed by path, size and mtime like the
 * in-memory cache, so a changed file is detected again; `--refresh` starts from nothing. The daemon always scans.
 */
export class PersistentDetectionCache extends DetectionCache {
  private readonly all = new Map<string, Detection[]>();
  private dirty = false;

  private constructor(private readonly path: string) {
    super();
  }

  /** Loads the cache file; a missing or unreadable one is an empty cache (it is only a cache). */
  static async open(path: string, options: { refresh?: boolean } = {}): Promise<PersistentDetectionCache> {
    const cache = new PersistentDetectionCache(path);
    if (options.refresh) {
      cache.dirty = true;
      return cache;
    }
    const parsed = fileSchema.safeParse(
      await readFile(path, "utf8")
        .then(JSON.parse)
        .catch(() => null),
    );
    for (const raw of parsed.success ? parsed.data.entries : []) {
      // An entry that no longer fits the schema (details another version wrote) is a miss: its model is detected again.
      const entry = entrySchema.safeParse(raw);
      if (entry.success) cache.remember(entry.data[0], entry.data[1]);
      else cache.dirty = true;
    }
    return cache;
  }

  private remember(key: string, value: Detection[]): void {
    super.set(key, value);
    this.all.set(key, value);
  }

  override set(key: string, value: Detection[]): void {
    this.remember(key, value);
    this.dirty = true;
  }

  /** Writes the cache (atomically) when something changed. */
  async save(): Promise<void> {
    if (!this.dirty) return;
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, JSON.stringify({ version: 1, entries: [...this.all] }));
    await rename(tmp, this.path);
    this.dirty = false;
  }
}
