import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { FileLock, type LockOwner } from "../store/FileLock.js";

/** The lock file a serving daemon holds in its data folder. */
export const DAEMON_LOCK_FILE = "daemon.lock";

/** What the lock file's second line says while the daemon has not bound its port yet. */
const STARTING = "starting";

export type DaemonLockResult =
  | { kind: "locked"; lock: FileLock }
  /** Another live daemon holds the folder: the message names its pid and address. */
  | { kind: "held"; owner: LockOwner; message: string }
  /** The folder or its lock file could not be written (a read-only data folder): serving goes on without a lock. */
  | { kind: "unlockable"; warning: string };

/**
 * On Linux, a pid recorded by a daemon that died and was since reused by some other program: its command line no
 * longer names tabagent. Unknown (no /proc, or another user's process hidden) is not stale.
 */
async function reusedPid(owner: LockOwner): Promise<boolean> {
  if (process.platform !== "linux") return false;
  const cmdline = await readFile(`/proc/${owner.pid}/cmdline`, "utf8").catch(() => null);
  return cmdline !== null && cmdline !== "" && !cmdline.includes("tabagent");
}

/**
 * One daemon per data folder: its venvs, probe verdicts and pulls are not written by two daemons at once, and a
 * daemon left behind (by `npx` killed under a process manager, say) is named instead of silently doubled. The lock
 * file holds the pid, then the address once listening (`setAddress`); a lock whose process is gone is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<DaemonLockResult> {
  const file = join(dataDir, DAEMON_LOCK_FILE);
  try {
    await mkdir(dataDir, { recursive: true });
    const got = await FileLock.tryAcquire(file, { details: [STARTING], isStale: reusedPid });
    if (got.lock) return { kind: "locked", lock: got.lock };
    const address = got.owner.details[0];
    const where = address && address !== STARTING ? `listening on ${address}` : "still starting, not listening yet";
    return {
      kind: "held",
      owner: got.owner,
      message:
        `another tabagent daemon (pid ${got.owner.pid}, ${where}) is using the data folder ${dataDir}. ` +
        `Stop it first (kill ${got.owner.pid}), or give this one its own folder with --data-dir DIR (TABAGENT_DATA_DIR). ` +
        `If pid ${got.owner.pid} is not a tabagent daemon, delete ${file}.`,
    };
  } catch (err) {
    return { kind: "unlockable", warning: `cannot lock the data folder ${dataDir} (${(err as Error).message}): a second daemon on it would not be detected` };
  }
}

/** Records the daemon's address in its lock, for the message a second daemon prints. */
export function setAddress(lock: FileLock, url: string): Promise<void> {
  return lock.update([url]);
}
