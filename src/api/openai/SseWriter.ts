import type { ServerResponse } from "node:http";
import { once } from "node:events";

/** Server-sent events on a raw response, honouring backpressure so a slow client never buffers a whole answer. */
export class SseWriter {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  start(headers: Record<string, string> = {}): void {
    if (this.started) return;
    this.started = true;
    // No `connection` header: Node derives it from the request (keep-alive, or close when the client sent
    // `Connection: close` or speaks HTTP/1.0), so a client that reads until the socket closes ends at [DONE].
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      ...headers,
    });
    // No flushHeaders(): the headers leave with the first event, in one packet.
  }

  /** Formats one event; events are collected and written together with `write`. */
  static event(json: string): string {
    return `data: ${json}\n\n`;
  }

  async send(data: unknown): Promise<void> {
    await this.write(SseWriter.event(JSON.stringify(data)));
  }

  async done(): Promise<void> {
    await this.write("data: [DONE]\n\n");
    this.end();
  }

  end(): void {
    if (this.open) this.res.end();
  }

  /** Writes already formatted events in one syscall, waiting for the socket when it is full. */
  async write(text: string): Promise<void> {
    if (!this.open) return;
    if (!this.res.write(text)) {
      await Promise.race([once(this.res, "drain"), once(this.res, "close")]);
    }
  }
}
