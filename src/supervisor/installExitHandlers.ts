import type { ProcessRegistry } from "./ProcessRegistry.js";

/** Node's EventEmitter listener type, which `process` and the tests' fake both declare. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- must match EventEmitter's signature for `process` to fit
type Listener = (...args: any[]) => void;

/** The part of `process` the handlers use (tests pass a fake). */
interface ExitHookTarget {
  readonly pid: number;
  on(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
  listenerCount(event: string): number;
  kill(pid: number, signal?: string | number): unknown;
}

const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/**
 * Makes sure no child outlives the daemon:
 * - `exit` (normal exit, `process.exit`, and the exit after an uncaught exception or unhandled rejection):
 *   SIGKILL to every registered group, synchronously (nothing async runs in `exit`).
 * - `uncaughtExceptionMonitor`: the same, before Node prints the error and exits (a monitor does not swallow it),
 *   unless the daemon has an `uncaughtException` handler (then the process lives on, and so do its children).
 * - SIGTERM/SIGINT/SIGHUP: if the daemon has its own handler (graceful shutdown stops each ManagedProcess), this
 *   does nothing and the `exit` hook is the backstop; if it is the only handler, it kills the groups and re-raises
 *   the signal so the daemon dies of it as it would have without the handler.
 * SIGKILL of the daemon cannot be caught: `setpriv --pdeathsig` (createExecaSpawner) covers that case.
 * Returns a function that removes the handlers.
 */
export function installExitHandlers(registry: ProcessRegistry, target: ExitHookTarget = process): () => void {
  const killAll = () => {
    registry.killAll("SIGKILL");
  };
  // Only when the exception will end the process: a daemon with its own uncaughtException handler keeps running.
  const onFatal = () => {
    if (target.listenerCount("uncaughtException") === 0) killAll();
  };
  const onSignal: Listener = (signal: NodeJS.Signals) => {
    if (target.listenerCount(signal) > 1) return;
    killAll();
    uninstall();
    target.kill(target.pid, signal);
  };
  const uninstall = () => {
    target.off("exit", killAll);
    target.off("uncaughtExceptionMonitor", onFatal);
    for (const s of SIGNALS) target.off(s, onSignal);
  };
  target.on("exit", killAll);
  target.on("uncaughtExceptionMonitor", onFatal);
  for (const s of SIGNALS) target.on(s, onSignal);
  return uninstall;
}
