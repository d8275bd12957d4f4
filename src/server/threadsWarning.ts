import type { Config } from "../config/configSchema.js";

/**
 * A warning when the daemon-wide threads setting, or a model's own, asks for more threads than this machine has
 * CPUs (os.availableParallelism()): llama.cpp's decode then waits on threads that share a core, and gets slower.
 * null when every setting fits.
 */
export function threadsWarning(config: Pick<Config, "threads" | "models">, cpus: number): string | null {
  const over: string[] = [];
  if (config.threads > cpus) over.push(`threads ${config.threads}`);
  for (const m of config.models) {
    if (m.threads !== undefined && m.threads > cpus) over.push(`threads ${m.threads} for model ${m.id ?? m.path}`);
  }
  if (over.length === 0) return null;
  return (
    `${over.join(", ")}: more than the ${cpus} CPUs available here; llama.cpp runs slower when its threads exceed the cores. ` +
    `Lower --threads (TABAGENT_THREADS) to ${cpus} or less; the default is half the CPUs.`
  );
}
