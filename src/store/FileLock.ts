import { open, readFile, unlink } from "node:fs/promises";
import { abortReason } from "../core/abortable.js";

/** Whether a process with this pid exists (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
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

/**
 * A lock file holding the owner's pid, created with O_EXCL: two pulls of the same blob (two CLI runs, or the CLI
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
      const owner = Number((await readFile(path, "utf8").catch(() => "")).trim());
      // An empty file is a lock being written right now: wait for it like any other.
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && !alive(owner)) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!waited) options.onWait?.();
      waited = true;
      await sleep(options.pollMs ?? 200, options.signal);
    }
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}
