import type { RunnerState } from "./ModelRunner.js";

interface ResidentModel {
  id: string;
  /** Estimated memory while loaded (RAM and VRAM together). */
  bytes: number;
  /** The part of `bytes` its engine put in VRAM (learnt once loaded: the GPU layer fit); 0 or unset: all in RAM. */
  vramBytes?: number;
  lastUsed: number;
  /** Requests hold or wait for it: never evicted. */
  busy: boolean;
  state: RunnerState;
}

interface EvictionLimits {
  /** Most models loaded at once; 0 = no limit. */
  maxLoaded: number;
  /** Bytes of RAM all loaded models may use together (their VRAM part does not count); 0 = no limit. */
  memoryBudget: number;
  /** Bytes of VRAM they may use together; 0 or unset = no limit. */
  vramBudget?: number;
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
export function planEviction(resident: readonly ResidentModel[], incoming: { id: string; bytes: number; vramBytes?: number }, limits: EvictionLimits): EvictionPlan {
  const others = resident.filter((r) => r.id !== incoming.id && r.state !== "unloaded");
  const budget = limits.memoryBudget > 0 ? limits.memoryBudget : Infinity;
  const vramBudget = (limits.vramBudget ?? 0) > 0 ? limits.vramBudget! : Infinity;
  const maxLoaded = limits.maxLoaded > 0 ? limits.maxLoaded : Infinity;
  const vram = (r: { bytes: number; vramBytes?: number }) => Math.min(r.bytes, Math.max(0, r.vramBytes ?? 0));
  const ram = (r: { bytes: number; vramBytes?: number }) => r.bytes - vram(r);
  if (ram(incoming) > budget) {
    return { ok: false, retry: "never", reason: `model '${incoming.id}' needs about ${ram(incoming)} bytes, more than the whole memory budget (${budget})` };
  }
  if (vram(incoming) > vramBudget) {
    return { ok: false, retry: "never", reason: `model '${incoming.id}' needs about ${vram(incoming)} bytes of VRAM, more than the whole VRAM budget (${vramBudget})` };
  }
  let count = others.length + 1;
  let used = others.reduce((n, r) => n + ram(r), 0) + ram(incoming);
  let usedVram = others.reduce((n, r) => n + vram(r), 0) + vram(incoming);
  const fits = () => count <= maxLoaded && used <= budget && usedVram <= vramBudget;
  if (fits()) return { ok: true, victims: [] };
  const candidates = others.filter((r) => r.state === "loaded" && !r.busy).sort((a, b) => a.lastUsed - b.lastUsed || a.id.localeCompare(b.id));
  const victims: string[] = [];
  for (const c of candidates) {
    victims.push(c.id);
    count--;
    used -= ram(c);
    usedVram -= vram(c);
    if (fits()) return { ok: true, victims };
  }
  const transient = others.some((r) => r.state === "loading" || r.state === "unloading");
  const why =
    count > maxLoaded
      ? `${others.length} models are loaded (maxLoadedModels ${maxLoaded})`
      : used > budget
        ? `the loaded models use the memory budget`
        : `the loaded models use the VRAM budget`;
  return { ok: false, retry: transient ? "wait" : "busy", reason: `cannot load '${incoming.id}': ${why} and every one of them is serving requests` };
}
