/**
 * A context's sequences, lent one per generating choice. Requests with `n` choices can want more than the context
 * has: a choice that finds none waits (first come, first served) for one to be given back, so extra choices run in
 * waves. A choice holds one sequence and never waits while holding it, so waiting cannot deadlock.
 */
export class SequencePool<S> {
  private readonly free: S[] = [];
  private readonly waiters: { resolve: (s: S) => void; signal: AbortSignal; onAbort: () => void }[] = [];

  /** `create` makes a new sequence while the context has some left, else returns null. */
  constructor(private readonly create: () => S | null) {}

  async take(signal: AbortSignal): Promise<S> {
    const ready = this.free.pop() ?? this.create();
    if (ready !== null) return ready;
    signal.throwIfAborted();
    return new Promise<S>((resolve, reject) => {
      const waiter = {
        resolve,
        signal,
        onAbort: () => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  give(sequence: S): void {
    const waiter = this.waiters.shift();
    if (!waiter) {
      this.free.push(sequence);
      return;
    }
    waiter.signal.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(sequence);
  }

  /** Choices waiting for a sequence. */
  get waiting(): number {
    return this.waiters.length;
  }
}
