// Per-thread CPU time from /proc/<pid>/task/<tid>/schedstat (Linux, nanosecond resolution): how much CPU each side
// spends per generated token, split into the process's main (JavaScript) thread and its other threads (the libuv
// pool threads where node-llama-cpp runs llama.cpp, plus V8 helpers), and the time threads were ready but waiting
// for a core, which on a 2-core machine shows contention directly.
import { readFileSync, readdirSync } from "node:fs";

export interface CpuTime {
  /** Nanoseconds the main thread (tid == pid) ran. */
  mainNs: number;
  /** Nanoseconds all other threads ran. */
  otherNs: number;
  /** Nanoseconds threads of the process spent runnable but waiting for a CPU. */
  waitNs: number;
}

export const ZERO_CPU: CpuTime = { mainNs: 0, otherNs: 0, waitNs: 0 };

/** Null where /proc or schedstat is not available (not Linux, or a kernel without schedstats). */
export function readCpuTime(pid: number): CpuTime | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const total = { ...ZERO_CPU };
  for (const tid of tids) {
    let fields: number[];
    try {
      fields = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(/\s+/).map(Number);
    } catch {
      continue; // the thread ended between readdir and read
    }
    const [run = 0, wait = 0] = fields;
    if (Number(tid) === pid) total.mainNs += run;
    else total.otherNs += run;
    total.waitNs += wait;
  }
  return total;
}

export function addCpu(a: CpuTime, b: CpuTime): CpuTime {
  return { mainNs: a.mainNs + b.mainNs, otherNs: a.otherNs + b.otherNs, waitNs: a.waitNs + b.waitNs };
}

function subCpu(a: CpuTime, b: CpuTime): CpuTime {
  return { mainNs: a.mainNs - b.mainNs, otherNs: a.otherNs - b.otherNs, waitNs: a.waitNs - b.waitNs };
}

/** Runs `fn` and returns the CPU time `pid` spent meanwhile (zero where it cannot be read). */
export async function withCpuTime<T>(pids: readonly number[], fn: () => Promise<T>): Promise<{ result: T; cpu: CpuTime[] }> {
  const before = pids.map(readCpuTime);
  const result = await fn();
  const after = pids.map(readCpuTime);
  return { result, cpu: pids.map((_, i) => (before[i] && after[i] ? subCpu(after[i], before[i]) : ZERO_CPU)) };
}
