import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { encodeFrame } from "../../src/nativeHost/encodeFrames.js";
import { FrameReader } from "../../src/nativeHost/FrameReader.js";

export type HostMessage = {
  id: string | number | null;
  ok?: boolean;
  event?: string;
  result?: unknown;
  error?: { code: string; message: string; param?: string };
} & Record<string, unknown>;

/**
 * The host as a browser runs it: the launcher from the manifest, the caller's origin as its argument, frames on
 * stdin and stdout. Every byte on stdout must belong to a frame holding a JSON object; parts are joined here the
 * way an extension joins them (`joinedParts` tells how many there were).
 */
export class HostProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly messages: HostMessage[] = [];
  /** Anything on stdout that is not a frame of a JSON object (must stay empty). */
  readonly garbage: string[] = [];
  stderr = "";
  readonly exited: Promise<number | null>;
  readonly #reader = new FrameReader({ maxBytes: 64 * 1024 * 1024 });
  readonly #parts = new Map<string, string[]>();
  #waiters: (() => void)[] = [];

  constructor(launcher: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(launcher, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.on("data", (chunk: Buffer) => {
      for (const e of this.#reader.push(chunk)) {
        if (e.kind !== "frame") this.garbage.push(`oversize frame ${e.length}`);
        else this.#onFrame(e.body.toString("utf8"));
      }
      this.#notify();
    });
    this.child.stderr.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdin.on("error", () => undefined);
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
    void this.exited.then(() => {
      const cut = this.#reader.end();
      if (cut) this.garbage.push(`a partial frame at exit: ${JSON.stringify(cut)}`);
      this.#notify();
    });
  }

  #onFrame(text: string): void {
    let m: HostMessage;
    try {
      m = JSON.parse(text) as HostMessage;
    } catch {
      this.garbage.push(text.slice(0, 200));
      return;
    }
    if (m === null || typeof m !== "object" || Array.isArray(m) || !("id" in m)) {
      this.garbage.push(text.slice(0, 200));
      return;
    }
    if (typeof m.part === "number" && typeof m.parts === "number" && typeof m.data === "string") {
      const key = JSON.stringify(m.id);
      const got = this.#parts.get(key) ?? [];
      got[m.part] = m.data;
      this.#parts.set(key, got);
      if (got.filter((x) => x !== undefined).length < m.parts) return;
      this.#parts.delete(key);
      const joined = JSON.parse(got.join("")) as HostMessage;
      this.messages.push({ ...joined, joinedParts: m.parts });
      return;
    }
    this.messages.push(m);
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  send(message: unknown): void {
    this.child.stdin.write(encodeFrame(JSON.stringify(message)));
  }

  sendRaw(bytes: Buffer): void {
    this.child.stdin.write(bytes);
  }

  /** The first message (from `from` on) that `match` accepts. */
  async waitFor(match: (m: HostMessage) => boolean, timeoutMs = 30_000, from = 0): Promise<HostMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(-5)).slice(0, 2000)}\nstderr: ${this.stderr.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** The final reply (`ok` set) to request `id`. */
  reply(id: string | number, timeoutMs?: number): Promise<HostMessage> {
    return this.waitFor((m) => m.id === id && typeof m.ok === "boolean", timeoutMs);
  }

  events(id: string | number, event?: string): HostMessage[] {
    return this.messages.filter((m) => m.id === id && m.event !== undefined && (event === undefined || m.event === event));
  }

  async request(message: { id: string | number } & Record<string, unknown>, timeoutMs?: number): Promise<HostMessage> {
    this.send(message);
    return this.reply(message.id, timeoutMs);
  }

  /** Closes stdin, as a browser does when the extension disconnects, and waits for the exit code. */
  async close(): Promise<number | null> {
    this.child.stdin.end();
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}
