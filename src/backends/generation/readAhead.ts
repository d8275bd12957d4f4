/**
 * Pulls from `source` ahead of the consumer, up to `capacity` items. The engine decodes the next token on its
 * own thread while the event loop formats and writes the previous one, instead of the two taking turns.
 * Errors arrive in order, after the items produced before them. `return()` stops the source.
 */
export interface ReadAheadIterator<T> extends AsyncIterableIterator<T> {
  /** Items already produced, without waiting: a consumer writes them together. */
  takeBuffered(): T[];
}

/** `onItem` sees each item the moment the source produces it (an engine's own timing, not the consumer's). */
export function readAhead<T>(source: AsyncIterable<T>, capacity = 32, onItem?: (item: T) => void): ReadAheadIterator<T> {
  const it = source[Symbol.asyncIterator]();
  const buffer: T[] = [];
  let finished = false;
  let failure: { error: unknown } | null = null;
  let stopped = false;
  let pump: Promise<void> | null = null;
  let wakeConsumer: (() => void) | null = null;
  let wakeProducer: (() => void) | null = null;

  const wake = (which: "consumer" | "producer") => {
    const fn = which === "consumer" ? wakeConsumer : wakeProducer;
    if (which === "consumer") wakeConsumer = null;
    else wakeProducer = null;
    fn?.();
  };

  const run = async () => {
    try {
      while (!stopped) {
        if (buffer.length >= capacity) {
          await new Promise<void>((r) => (wakeProducer = r));
          continue;
        }
        const r = await it.next();
        if (r.done) break;
        onItem?.(r.value);
        buffer.push(r.value);
        // Let the source start producing the next item (an engine dispatches its next decode a few ticks after
        // being asked) before the consumer takes the thread to write this one.
        setImmediate(() => setImmediate(() => wake("consumer")));
      }
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      wake("consumer");
    }
  };

  const self: ReadAheadIterator<T> = {
    [Symbol.asyncIterator]: () => self,
    takeBuffered() {
      const items = buffer.splice(0, buffer.length);
      if (items.length > 0) wake("producer");
      return items;
    },
    async next(): Promise<IteratorResult<T>> {
      pump ??= run();
      for (;;) {
        if (buffer.length > 0) {
          const value = buffer.shift()!;
          wake("producer");
          return { value, done: false };
        }
        if (finished) {
          if (failure) {
            const { error } = failure;
            failure = null;
            throw error;
          }
          return { value: undefined, done: true };
        }
        await new Promise<void>((r) => (wakeConsumer = r));
      }
    },
    async return(): Promise<IteratorResult<T>> {
      stopped = true;
      wake("producer");
      await pump; // the item being produced settles first; then the source is closed
      await it.return?.();
      buffer.length = 0;
      return { value: undefined, done: true };
    },
  };
  return self;
}
