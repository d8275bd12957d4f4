import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/configSchema.js";
import { MODEL_ID_PATTERN } from "../config/configSchema.js";
import { ConfigError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import { defaultModelId, describeGgufFile } from "./describeGgufFile.js";

/**
 * The models this daemon serves, by id. Ids map to files only through this table, so a request's model id
 * can never name a path outside the configured models.
 */
export class ModelRegistry {
  private readonly byId = new Map<string, ModelDescriptor>();

  constructor(descriptors: Iterable<ModelDescriptor> = []) {
    for (const d of descriptors) this.add(d);
  }

  add(descriptor: ModelDescriptor): void {
    const existing = this.byId.get(descriptor.id);
    if (existing) {
      throw new ConfigError("models", `two models have the id '${descriptor.id}' (${existing.path} and ${descriptor.path}); give one an explicit id with --model ID=PATH`);
    }
    this.byId.set(descriptor.id, descriptor);
  }

  get(id: string): ModelDescriptor | undefined {
    return this.byId.get(id);
  }

  list(): ModelDescriptor[] {
    return [...this.byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get size(): number {
    return this.byId.size;
  }
}

/** A projector for a vision model is part of its model, not a model to list. */
function isProjectorFile(name: string): boolean {
  return /(^|[-_.])mmproj([-_.]|$)/i.test(name);
}

async function findGgufFiles(dir: string, depth: number): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith(".")) continue;
    const full = join(dir, e.name);
    if (e.isFile() && /\.gguf$/i.test(e.name) && !isProjectorFile(e.name)) out.push(full);
    else if (e.isDirectory() && depth > 0) out.push(...(await findGgufFiles(full, depth - 1)));
  }
  return out;
}

/**
 * Builds the registry from `--model` entries (errors are fatal: the user named them) and `--models-dir`
 * folders (files that are not valid GGUF are skipped with a warning).
 */
export async function buildModelRegistry(config: Config, logger?: Logger, signal?: AbortSignal): Promise<ModelRegistry> {
  const registry = new ModelRegistry();
  for (const entry of config.models) {
    const path = resolve(entry.path);
    const id = entry.id ?? defaultModelId(path);
    if (!MODEL_ID_PATTERN.test(id)) {
      throw new ConfigError("models", `'${id}' (from ${entry.path}) is not a valid model id; use --model ID=PATH with letters, digits and . _ : @ -`);
    }
    try {
      registry.add((await describeGgufFile(path, id, signal)).descriptor);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError("models", `cannot serve ${entry.path}: ${(err as Error).message}`);
    }
  }
  for (const dir of config.modelsDirs) {
    let files: string[];
    try {
      files = await findGgufFiles(resolve(dir), 1);
    } catch (err) {
      throw new ConfigError("modelsDirs", `cannot read ${dir}: ${(err as Error).message}`);
    }
    for (const file of files) {
      const id = defaultModelId(file);
      if (!MODEL_ID_PATTERN.test(id)) {
        logger?.warn({ file }, "skipping model file: its name is not a valid model id");
        continue;
      }
      if (registry.get(id)) {
        logger?.warn({ file, id }, "skipping model file: another model already has this id");
        continue;
      }
      try {
        registry.add((await describeGgufFile(file, id, signal)).descriptor);
      } catch (err) {
        logger?.warn({ file, err: (err as Error).message }, "skipping model file that is not a readable GGUF");
      }
    }
  }
  return registry;
}
