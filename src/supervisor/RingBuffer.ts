/** The last `capacity` items pushed; `total` counts every push, so callers can ask for what came after a mark. */
export class RingBuffer<T> {
  private readonly items: T[] = [];
  private start = 0;
  private pushed = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`RingBuffer capacity must be a positive integer, got ${capacity}`);
  }

  /** How many items were ever pushed. */
  get total(): number {
    return this.pushed;
  }

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.pushed++;
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return;
    }
    this.items[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }

  /** The last `n` items, oldest first. */
  last(n: number): T[] {
    if (n <= 0) return [];
    const all = this.toArray();
    return all.slice(Math.max(0, all.length - n));
  }

  /** Items pushed after `total` was `mark` (those still held), oldest first. */
  since(mark: number): T[] {
    return this.last(this.pushed - mark);
  }

  clear(): void {
    this.items.length = 0;
    this.start = 0;
  }
}
