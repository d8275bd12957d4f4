import { realpath } from "node:fs/promises";
import { basename } from "node:path";

/**
 * The identity of a model's weights, so one file reachable from two places (the hub cache and Ollama both name
 * blobs by sha256; a models folder may link into the cache) is listed once.
 */
export async function contentKey(path: string): Promise<string> {
  const real = await realpath(path).catch(() => path);
  const name = basename(real);
  const m = /^(?:sha256-)?([0-9a-f]{64})$/.exec(name);
  return m ? `sha256:${m[1]}` : `path:${real}`;
}
