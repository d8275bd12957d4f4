import { homedir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Where pulled models live: the Hugging Face hub cache, so Python tools (transformers, huggingface-cli) and this
 * daemon share one copy. Same lookup as huggingface_hub: HF_HUB_CACHE, else HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. The config's `storeDir` (TABAGENT_STORE_DIR)
 * wins over all of them.
 */
export function resolveStoreDir(configured: string | undefined, env: NodeJS.ProcessEnv): string {
  if (configured) return resolve(configured);
  if (env.HF_HUB_CACHE) return resolve(env.HF_HUB_CACHE);
  if (env.HF_HOME) return resolve(env.HF_HOME, "hub");
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache");
  return resolve(cache, "huggingface", "hub");
}
