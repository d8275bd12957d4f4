import type { RunnerState } from "./ModelRunner.js";

interface ResidentModel {
  id: string;
  /** Estimated memory while loaded. */
  bytes: number;
  lastUsed: number;
  /** Requests hold or wait for it: never evicted. */
  busy: boolean;
  state: RunnerState;
}

interface EvictionLimits {
  /** Most models loaded at once; 0 = no limit. */
  maxLoaded: number;
  /** Bytes all loaded models may use together; 0 = no limit. */
  memoryBudget: number;
}

type EvictionPlan =
  | { ok: true; victims: string[] }
  /** `wait`: models still loading or unloading may change the picture; `never`: this model cannot fit at all. */
  | { ok: false; retry: "wait" | "busy" | "never"; reason: string };

/**
 * Which loaded models to unload so that `incoming` fits: least recently used first, only idle loaded ones. Pure, so
 * the order is unit-tested with plain numbers. Models loading or unloading count as resident (their memory is not
 * free yet) but are never chosen.
 */
export function planEviction(resident: readonly ResidentModel[], incoming: { id: string; bytes: number }, limits: EvictionLimits): EvictionPlan {
  const others = resident.filter((r) => r.id !== incoming.id && r.state !== "unloaded");
  const budget = limits.memoryBudget > 0 ? limits.memoryBudget : Infinity;
  const maxLoaded = limits.maxLoaded > 0 ? limits.maxLoaded : Infinity;
  if (incoming.bytes > budget) {
    return { ok: false, retry: "never", reason: `model '${incoming.id}' needs about ${incoming.bytes} bytes, more than the whole memory budget (${budget})` };
  }
  let count = others.length + 1;
  let used = others.reduce((n, r) => n + r.bytes, 0) + incoming.bytes;
  const fits = () => count <= maxLoaded && used <= budget;
  if (fits()) return { ok: true, victims: [] };
  const candidates = others.filter((r) => r.state === "loaded" && !r.busy).sort((a, b) => a.lastUsed - b.lastUsed || a.id.localeCompare(b.id));
  const victims: string[] = [];
  for (const c of candidates) {
    victims.push(c.id);
    count--;
    used -= c.bytes;
    if (fits()) return { ok: true, victims };
  }
  const transient = others.some((r) => r.state === "loading" || r.state === "unloading");
  const why = count > maxLoaded ? `${others.length} models are loaded (maxLoadedModels ${maxLoaded})` : `the loaded models use the memory budget`;
  return { ok: false, retry: transient ? "wait" : "busy", reason: `cannot load '${incoming.id}': ${why} and every one of them is serving requests` };
}
