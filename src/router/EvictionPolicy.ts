import type { Logger } from "pino";
import { abortable } from "../core/abortable.js";
import { ServiceUnavailableError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import type { ModelRunner } from "./ModelRunner.js";
import { planEviction } from "./planEviction.js";

interface EvictionPolicyOptions {
  /** Every model's runner, by model id (the router's table; read, never changed here). */
  runners: ReadonlyMap<string, ModelRunner>;
  logger: Logger;
  /** Idle time before a model unloads, in ms (0 = never). */
  idleTtlMs: number;
  /** A per-model idle TTL in ms, overriding idleTtlMs (0 = never unload). */
  idleTtlFor?: (id: string) => number | undefined;
  /** Most models loaded at once; 0 or unset: no limit. */
  maxLoadedModels?: number;
  /** Estimated bytes all loaded models may use together; 0 or unset: no limit. */
  memoryBudgetBytes?: number;
  /** Estimated bytes of VRAM all loaded models may use together; 0 or unset: no limit. */
  vramBudgetBytes?: number;
  /** A model's resident size while loaded; default its file size. */
  estimateMemory?: (descriptor: ModelDescriptor) => number;
}

/** What a loaded engine says it put in VRAM (runtimeInfo `vram_bytes`, from the GPU layer fit); 0 when it does not say. */
function learntVram(runtime: Record<string, unknown> | null | undefined): number {
  const v = runtime?.["vram_bytes"];
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0;
}

/**
 * When models leave memory: after their idle TTL (the runner arms the timer with `idleTtl`), and to make room for
 * another under the loaded-model count and the memory budget (`makeRoom`, least recently used idle model first).
 */
export class EvictionPolicy {
  constructor(private readonly options: EvictionPolicyOptions) {}

  idleTtl(id: string): number {
    return this.options.idleTtlFor?.(id) ?? this.options.idleTtlMs;
  }

  private limited(): boolean {
    return (this.options.maxLoadedModels ?? 0) > 0 || (this.options.memoryBudgetBytes ?? 0) > 0 || (this.options.vramBudgetBytes ?? 0) > 0;
  }

  private estimate(descriptor: ModelDescriptor): number {
    return this.options.estimateMemory?.(descriptor) ?? descriptor.sizeBytes;
  }

  /**
   * Makes room for `descriptor` before it loads: evicts least recently used idle models until the loaded-model count
   * and the memory budget allow it, waits for loads/unloads in progress when they decide it, and refuses (503) when
   * every model that is in the way is serving requests. Called from inside the runner's load, so concurrent loads
   * see each other as resident.
   */
  async makeRoom(descriptor: ModelDescriptor, signal: AbortSignal): Promise<void> {
    if (!this.limited() || descriptor.engine === "upstream") return;
    const { runners, logger } = this.options;
    const limits = { maxLoaded: this.options.maxLoadedModels ?? 0, memoryBudget: this.options.memoryBudgetBytes ?? 0, vramBudget: this.options.vramBudgetBytes ?? 0 };
    const bytes = this.estimate(descriptor);
    for (;;) {
      const resident = [...runners.entries()]
        .filter(([id, r]) => id !== descriptor.id && r.status.state !== "unloaded" && r.backend.descriptor.engine !== "upstream")
        .map(([id, r]) => ({
          id,
          bytes: this.estimate(r.backend.descriptor),
          // A loaded model's VRAM part is learnt from its engine; the incoming one counts whole against RAM until then.
          vramBytes: learntVram(r.status.runtime),
          lastUsed: r.lastUsed,
          busy: r.busy,
          state: r.status.state,
        }));
      const plan = planEviction(resident, { id: descriptor.id, bytes }, limits);
      if (plan.ok) {
        if (plan.victims.length === 0) return;
        const unloads = plan.victims.flatMap((id) => {
          const t = runners.get(id)?.evict(`evicted (least recently used) to make room for ${descriptor.id}`);
          return t ? [t] : [];
        });
        await abortable(Promise.all(unloads), signal);
        continue;
      }
      if (plan.retry === "wait") {
        const transitions = [...runners.values()].flatMap((r) =>
          r.pendingTransition && r.backend.descriptor.id !== descriptor.id ? [r.pendingTransition.catch(() => undefined)] : [],
        );
        if (transitions.length > 0) {
          await abortable(Promise.race(transitions), signal);
          continue;
        }
      }
      logger.warn({ model: descriptor.id, reason: plan.reason }, "load refused");
      throw new ServiceUnavailableError(`${plan.reason}.`, {
        code: plan.retry === "never" ? "memory_budget_exceeded" : "models_busy",
        headers: plan.retry === "never" ? {} : { "retry-after": "1" },
      });
    }
  }
}
