/** Anything whose process group can be killed synchronously (a ChildHandle is one). */
interface KillableGroup {
  readonly pid: number | undefined;
  killGroup(signal: NodeJS.Signals): void;
}

/**
 * Every child process group the daemon has running, so that they can all be killed synchronously when the daemon
 * exits (`installExitHandlers`). The daemon creates one and passes it to every ManagedProcess; no module singleton.
 */
export class ProcessRegistry {
  private readonly children = new Set<KillableGroup>();

  add(child: KillableGroup): void {
    this.children.add(child);
  }

  delete(child: KillableGroup): void {
    this.children.delete(child);
  }

  get size(): number {
    return this.children.size;
  }

  pids(): number[] {
    return [...this.children].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  /** Signals every registered group (SIGKILL by default), forgets them, and returns how many there were. Never throws. */
  killAll(signal: NodeJS.Signals = "SIGKILL"): number {
    const all = [...this.children];
    this.children.clear();
    for (const child of all) {
      try {
        child.killGroup(signal);
      } catch {
        // best effort: this runs inside exit handlers
      }
    }
    return all.length;
  }
}
