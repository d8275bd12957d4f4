import { finished } from "node:stream/promises";
import { PassThrough } from "node:stream";
import type { ChildHandle, CommandSpec, ExitInfo, Spawner } from "../../src/supervisor/Spawner.js";

/** A child process that only does what the test tells it. */
class FakeChild implements ChildHandle {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly exited: Promise<ExitInfo>;
  /** Every signal sent to its group, in order. */
  readonly signals: NodeJS.Signals[] = [];
  /** What /health would answer. */
  healthy = false;
  /** Signals it dies of (remove SIGTERM to model a child that ignores it). */
  readonly diesOn = new Set<NodeJS.Signals>(["SIGTERM", "SIGKILL", "SIGINT"]);
  alive = true;
  private resolveExit!: (info: ExitInfo) => void;

  constructor(
    readonly pid: number,
    readonly command: CommandSpec,
    readonly port: number,
    readonly spawnedAt: number,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  killGroup(signal: NodeJS.Signals): void {
    this.signals.push(signal);
    if (this.diesOn.has(signal)) this.exit({ code: null, signal });
  }

  /** Writes lines to stderr (as llama-server does). */
  say(...lines: string[]): void {
    for (const line of lines) this.stderr.write(line + "\n");
  }

  /** Ends the process: its output is closed and read before `exited` settles. */
  exit(info: ExitInfo = { code: 1, signal: null }): void {
    if (!this.alive) return;
    this.alive = false;
    this.stdout.end();
    this.stderr.end();
    void Promise.all([finished(this.stdout), finished(this.stderr)]).then(() => this.resolveExit(info));
  }
}

/** A Spawner that makes FakeChildren; `onSpawn` scripts each one (say something, exit, become healthy). */
export class FakeSpawner {
  readonly children: FakeChild[] = [];
  private nextPid = 1000;
  private nextPort = 40_000;
  onSpawn: (child: FakeChild, index: number) => void = (child) => {
    child.healthy = true;
  };

  constructor(private readonly now: () => number) {}

  readonly spawn: Spawner = (command) => {
    const portArg = command.args[command.args.indexOf("--port") + 1];
    const child = new FakeChild(this.nextPid++, command, Number(portArg), this.now());
    this.children.push(child);
    this.onSpawn(child, this.children.length - 1);
    return child;
  };

  readonly findPort = async (): Promise<number> => this.nextPort++;

  readonly healthCheck = async (port: number): Promise<boolean> => this.children.some((c) => c.port === port && c.alive && c.healthy);

  get last(): FakeChild {
    const child = this.children.at(-1);
    if (!child) throw new Error("nothing was spawned");
    return child;
  }

  get alive(): FakeChild[] {
    return this.children.filter((c) => c.alive);
  }
}
