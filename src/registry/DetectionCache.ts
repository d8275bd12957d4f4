import type { Detection } from "../core/detectionSchema.js";

/**
 * Detections by (path, size, mtime): a rescan or a listing never re-reads a header that has not changed.
 * Bounded, oldest entries first out.
 */
export class DetectionCache {
  private readonly entries = new Map<string, Detection[]>();

  constructor(private readonly maxEntries = 10_000) {}

  static key(path: string, size: number, mtimeMs: number): string {
    return `${path}\0${size}\0${mtimeMs}`;
  }

  get(key: string): Detection[] | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: Detection[]): void {
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, value);
  }

  get size(): number {
    return this.entries.size;
  }
}
