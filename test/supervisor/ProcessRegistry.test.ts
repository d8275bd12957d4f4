import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { installExitHandlers } from "../../src/supervisor/installExitHandlers.js";
import { ProcessRegistry } from "../../src/supervisor/ProcessRegistry.js";

function group(pid: number) {
  const signals: NodeJS.Signals[] = [];
  return { pid, signals, killGroup: (s: NodeJS.Signals) => void signals.push(s) };
}

class FakeProcess extends EventEmitter {
  readonly pid = 4242;
  readonly kills: [number, string | number | undefined][] = [];
  kill(pid: number, signal?: string | number): boolean {
    this.kills.push([pid, signal]);
    return true;
  }
}

describe("ProcessRegistry", () => {
  it("kills every registered group once and forgets them; a failing kill does not stop the others", () => {
    const registry = new ProcessRegistry();
    const a = group(1);
    const b = {
      pid: 2,
      killGroup: () => {
        throw new Error("EINVAL");
      },
    };
    const c = group(3);
    registry.add(a);
    registry.add(b);
    registry.add(c);
    registry.delete(c);
    expect(registry.pids()).toEqual([1, 2]);
    expect(registry.killAll()).toBe(2);
    expect(a.signals).toEqual(["SIGKILL"]);
    expect(c.signals).toEqual([]);
    expect(registry.size).toBe(0);
    expect(registry.killAll()).toBe(0);
  });
});

describe("installExitHandlers", () => {
  it("SIGKILLs the groups on exit", () => {
    const registry = new ProcessRegistry();
    const proc = new FakeProcess();
    const a = group(1);
    registry.add(a);
    const uninstall = installExitHandlers(registry, proc);
    proc.emit("exit", 0);
    expect(a.signals).toEqual(["SIGKILL"]);
    uninstall();
    expect(proc.listenerCount("exit")).toBe(0);
    expect(proc.listenerCount("SIGTERM")).toBe(0);
  });

  it("on an uncaught exception, kills only when the process will die of it", () => {
    const registry = new ProcessRegistry();
    const proc = new FakeProcess();
    const a = group(1);
    registry.add(a);
    installExitHandlers(registry, proc);
    const keepAlive = () => undefined;
    proc.on("uncaughtException", keepAlive);
    proc.emit("uncaughtExceptionMonitor", new Error("x"));
    expect(a.signals).toEqual([]);
    proc.off("uncaughtException", keepAlive);
    proc.emit("uncaughtExceptionMonitor", new Error("x"));
    expect(a.signals).toEqual(["SIGKILL"]);
  });

  it("on a signal nobody else handles: kills the groups and re-raises it; with the daemon's own handler: leaves it alone", () => {
    const registry = new ProcessRegistry();
    const proc = new FakeProcess();
    const a = group(1);
    registry.add(a);
    installExitHandlers(registry, proc);
    const graceful = () => undefined;
    proc.on("SIGTERM", graceful);
    proc.emit("SIGTERM", "SIGTERM");
    expect(a.signals).toEqual([]);
    expect(proc.kills).toEqual([]);
    proc.off("SIGTERM", graceful);
    proc.emit("SIGTERM", "SIGTERM");
    expect(a.signals).toEqual(["SIGKILL"]);
    expect(proc.kills).toEqual([[4242, "SIGTERM"]]);
    expect(proc.listenerCount("SIGTERM")).toBe(0); // removed, so the re-raised signal has its default effect
  });
});
