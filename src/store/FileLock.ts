import { open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { abortReason } from "../core/abortable.js";

/** Whether a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Who holds a lock: the pid on the file's first line, and the lines after it (what the owner chose to record). */
export interface LockOwner {
  pid: number;
  details: string[];
}

/** The first line's pid (0 when the file is empty or being written), then the details. */
function parseLock(text: string): LockOwner {
  const [first = "", ...rest] = text.split("\n");
  const pid = Number(first.trim());
  return { pid: Number.isSafeInteger(pid) && pid > 0 ? pid : 0, details: rest.map((l) => l.trim()).filter((l) => l !== "") };
}

function lockText(details: readonly string[]): string {
  return `${[String(process.pid), ...details].join("\n")}\n`;
}

/**
 * A lock file holding the owner's pid (its first line; further lines may say more about the owner), created with O_EXCL: two pulls of the same blob (two CLI runs, or the CLI
 * and a daemon) download it once; the second waits, then finds the blob in place. A lock left by a process that
 * died (SIGKILL, power loss) is taken over.
 */
export class FileLock {
  private constructor(private readonly path: string) {}

  static async acquire(path: string, options: { signal?: AbortSignal; pollMs?: number; onWait?: () => void } = {}): Promise<FileLock> {
    let waited = false;
    for (;;) {
      options.signal?.throwIfAborted();
      try {
        const handle = await open(path, "wx");
        await handle.writeFile(String(process.pid));
        await handle.close();
        return new FileLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = parseLock(await readFile(path, "utf8").catch(() => "")).pid;
      // An empty file is a lock being written right now: wait for it like any other.
      if (owner > 0 && owner !== process.pid && !processAlive(owner)) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!waited) options.onWait?.();
      waited = true;
      await sleep(options.pollMs ?? 200, options.signal);
    }
  }

  /**
   * Takes the lock if nobody alive holds it, without waiting: the lock, or who holds it. A lock whose pid is dead (or
   * this process's own, left by an earlier process that had the same pid), or that `isStale` calls stale, is taken
   * over; a file still empty after `emptyGraceMs` (its writer died between creating and writing it) too.
   */
  static async tryAcquire(
    path: string,
    options: { details?: readonly string[]; isStale?: (owner: LockOwner) => boolean | Promise<boolean>; emptyGraceMs?: number } = {},
  ): Promise<{ lock: FileLock; owner?: undefined } | { lock?: undefined; owner: LockOwner }> {
    const emptySince = Date.now();
    for (;;) {
      try {
        const handle = await open(path, "wx");
        await handle.writeFile(lockText(options.details ?? []));
        await handle.close();
        return { lock: new FileLock(path) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = parseLock(await readFile(path, "utf8").catch(() => ""));
      const stale =
        owner.pid === 0
          ? Date.now() - emptySince >= (options.emptyGraceMs ?? 1_000)
          : owner.pid === process.pid || !processAlive(owner.pid) || ((await options.isStale?.(owner)) ?? false);
      if (stale) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (owner.pid > 0) return { owner };
      await sleep(50);
    }
  }

  /** Replaces the lines after the pid (an address known only once listening, say); readers never see a partial file. */
  async update(details: readonly string[]): Promise<void> {
    const temp = `${this.path}.${process.pid}.tmp`;
    await writeFile(temp, lockText(details));
    await rename(temp, this.path);
  }

  /** The lock file's path. */
  get file(): string {
    return this.path;
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}
