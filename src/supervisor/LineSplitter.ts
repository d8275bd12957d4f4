const NEWLINE = 0x0a;

/**
 * Turns a byte stream into lines. A line is decoded only once complete, so multi-byte characters split across
 * chunks stay whole; invalid UTF-8 becomes U+FFFD. Lines longer than `maxBytes` are cut and marked.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes = 4096,
  ) {}

  push(chunk: Buffer | Uint8Array | string): void {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
      this.append(buf.subarray(start, nl === -1 ? buf.length : nl));
      if (nl === -1) return;
      this.emit();
      start = nl + 1;
    }
  }

  /** Emits a last line that had no newline (call when the stream ends). */
  flush(): void {
    if (this.size > 0 || this.truncated) this.emit();
  }

  private append(part: Buffer): void {
    if (this.truncated || part.length === 0) return;
    const room = this.maxBytes - this.size;
    if (part.length > room) {
      this.parts.push(part.subarray(0, room));
      this.size += room;
      this.truncated = true;
      return;
    }
    this.parts.push(part);
    this.size += part.length;
  }

  private emit(): void {
    let line = Buffer.concat(this.parts, this.size).toString("utf8");
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (this.truncated) line += " …[truncated]";
    this.parts = [];
    this.size = 0;
    this.truncated = false;
    this.onLine(line);
  }
}
