import { isAbsolute, relative, resolve, sep } from "node:path";
import { UnsafePathError } from "./errors.js";

const MAX_PATH = 1000;

/**
 * Whether a file name from the hub (or the user) can become a path under a snapshot folder: relative, `/`-separated,
 * no `.`/`..`/empty segments, no backslashes, drive letters or control characters. Past model-pull CVEs were
 * exactly these names (`../../.bashrc`, `/etc/cron.d/x`, `C:\...`) written by a client that trusted the server.
 */
export function isSafeRepoPath(path: string): boolean {
  if (path.length === 0 || path.length > MAX_PATH) return false;
  if (/[\u0000-\u001f\u007f\\]/.test(path)) return false;
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return false;
  return path.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

/** A content hash used as a blob file name: 40 (git sha1) or 64 (sha256) lowercase hex digits, nothing else. */
export function isHexDigest(text: string): boolean {
  return /^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(text);
}

/** `child` resolved, when it lies strictly inside `root`; throws otherwise. */
export function pathInside(root: string, child: string): string {
  const full = resolve(root, child);
  const rel = relative(root, full);
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
    throw new UnsafePathError(`refusing ${child}: it resolves outside ${root}`);
  }
  return full;
}
