import { readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { MODEL_ID_PATTERN } from "../config/configSchema.js";
import type { DetectionCache } from "../registry/DetectionCache.js";
import { describeLocalModels } from "../registry/ModelRegistry.js";
import type { DiscoveredModel } from "./DiscoveredModel.js";

/** Ollama's store: the configured folder, else $OLLAMA_MODELS, else ~/.ollama/models. */
export async function findOllamaDir(configured: string | undefined, env: NodeJS.ProcessEnv): Promise<string | null> {
  const dir = configured ? resolve(configured) : env.OLLAMA_MODELS ? resolve(env.OLLAMA_MODELS) : join(env.HOME || homedir(), ".ollama", "models");
  return (await stat(join(dir, "manifests")).catch(() => null))?.isDirectory() ? dir : null;
}

const DIGEST = /^sha256[:-]([0-9a-f]{64})$/;

/** An Ollama image manifest (OCI style); only the layers matter here. */
const manifestSchema = z.object({
  layers: z.array(z.object({ mediaType: z.string(), digest: z.string(), size: z.number().optional() })).max(64),
});

const MODEL_LAYER = "application/vnd.ollama.image.model";
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** `registry.ollama.ai/library/llama3.2/3b` → `llama3.2:3b`; other namespaces keep theirs: `hf.co/owner/name/Q4_K_M` → `owner--name:Q4_K_M`. */
function ollamaModelId(host: string, namespace: string, model: string, tag: string): string | null {
  if (![host, namespace, model, tag].every((p) => PART.test(p))) return null;
  const id = namespace === "library" && host === "registry.ollama.ai" ? `${model}:${tag}` : `${namespace}--${model}:${tag}`;
  return MODEL_ID_PATTERN.test(id) ? id : null;
}

/**
 * Models Ollama has pulled: `manifests/<host>/<namespace>/<model>/<tag>` name a GGUF blob in `blobs/sha256-<hex>`.
 * The blob is served in place (read-only); digests are checked to be sha256 hex before they become a file name.
 */
export async function discoverOllamaModels(root: string, options: { cache?: DetectionCache; logger?: Logger; signal?: AbortSignal } = {}): Promise<DiscoveredModel[]> {
  const out: DiscoveredModel[] = [];
  const manifests = join(root, "manifests");
  const list = async (dir: string) =>
    (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => !e.name.startsWith(".")).sort((a, b) => a.name.localeCompare(b.name));
  for (const host of (await list(manifests)).filter((e) => e.isDirectory())) {
    for (const ns of (await list(join(manifests, host.name))).filter((e) => e.isDirectory())) {
      for (const model of (await list(join(manifests, host.name, ns.name))).filter((e) => e.isDirectory())) {
        for (const tag of (await list(join(manifests, host.name, ns.name, model.name))).filter((e) => e.isFile())) {
          const where = `${host.name}/${ns.name}/${model.name}:${tag.name}`;
          const id = ollamaModelId(host.name, ns.name, model.name, tag.name);
          if (!id) continue;
          let manifest;
          try {
            manifest = manifestSchema.parse(JSON.parse(await readFile(join(manifests, host.name, ns.name, model.name, tag.name), "utf8")));
          } catch (err) {
            options.logger?.warn({ manifest: where, err: (err as Error).message.slice(0, 200) }, "skipping Ollama model: unreadable manifest");
            continue;
          }
          const layer = manifest.layers.find((l) => l.mediaType === MODEL_LAYER);
          const digest = layer ? DIGEST.exec(layer.digest) : null;
          if (!digest) continue;
          const blob = join(root, "blobs", `sha256-${digest[1]}`);
          let found;
          try {
            found = await describeLocalModels(blob, { cache: options.cache, signal: options.signal });
          } catch (err) {
            options.logger?.warn({ manifest: where, err: (err as Error).message }, "skipping Ollama model: blob not readable");
            continue;
          }
          const first = found[0];
          if (!first || first.detection.format === "unknown") continue;
          out.push({
            id,
            origin: "ollama",
            label: where.replace(/^registry\.ollama\.ai\/library\//, ""),
            descriptor: first.descriptor,
            contentKey: `sha256:${digest[1]}`,
          });
        }
      }
    }
  }
  return out;
}
