export interface StopMatch {
  /** Text safe to emit now. */
  text: string;
  /** A stop sequence was found; `text` ends right before it and nothing more should be emitted. */
  stopped: boolean;
}

/**
 * Finds stop sequences across piece boundaries. Text that could be the start of a stop sequence is held back
 * until it either completes the sequence (dropped) or cannot (released).
 */
export class StopSequenceMatcher {
  private held = "";
  private readonly stops: string[];

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  push(piece: string): StopMatch {
    if (this.stops.length === 0) return { text: piece, stopped: false };
    const buf = this.held + piece;
    let first = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    if (first >= 0) {
      this.held = "";
      return { text: buf.slice(0, first), stopped: true };
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** Releases held text at the end of generation (it never became a stop sequence). */
  flush(): string {
    const t = this.held;
    this.held = "";
    return t;
  }
}
