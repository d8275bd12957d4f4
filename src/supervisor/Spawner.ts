import type { Readable } from "node:stream";

/** What to run. `args` already contain the port the child must listen on. */
export interface CommandSpec {
  file: string;
  args: readonly string[];
  /** Added to the daemon's environment. */
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
}

/** How a child ended. `error` is set when it could not be spawned at all (no exit code then). */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** A spawned child that leads its own process group. */
export interface ChildHandle {
  readonly pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Settles once the child has exited and its output has been read (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Sends `signal` to the child's whole process group; does nothing once the group is gone. Synchronous. */
  killGroup(signal: NodeJS.Signals): void;
}

/** Starts a child. Injected so that the state machine is testable without processes. */
export type Spawner = (command: CommandSpec) => ChildHandle;
