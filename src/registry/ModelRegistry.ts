import { readdir, readlink, realpath, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { Logger } from "pino";
import type { Config, ModelEntry } from "../config/configSchema.js";
import { HUB_SOURCE_PATH_PREFIX, MODEL_ID_PATTERN } from "../config/configSchema.js";
import { ConfigError } from "../core/errors.js";
import type { ModelDescriptor } from "../core/types.js";
import type { Detection, EngineName } from "../core/detectionSchema.js";
import { detectSource } from "../detection/detectSource.js";
import { withGgufServingChoice, type GgufServingChoice } from "../engines/ggufServingEngine.js";
import { isProjectorFile } from "../detection/groupGgufFiles.js";
import { allowedLinkRoots, describeSkippedLink, isInside } from "../detection/ModelFileSystem.js";
import { DetectionCache } from "./DetectionCache.js";

/**
 * The models this daemon serves, by id. Ids map to files only through this table, so a request's model id
 * can never name a path outside the configured models.
 */
export class ModelRegistry {
  private readonly byId = new Map<string, ModelDescriptor>();

  /** `ggufChoice`: the daemon's default engine for GGUF models (the `ggufEngine` setting), applied to each model added. */
  constructor(
    descriptors: Iterable<ModelDescriptor> = [],
    readonly ggufChoice: GgufServingChoice | null = null,
  ) {
    for (const d of descriptors) this.add(d);
  }

  add(added: ModelDescriptor): void {
    const detection = withGgufServingChoice(added.detection, this.ggufChoice);
    const descriptor = detection === added.detection ? added : { ...added, engine: detection.engine!.name, detection };
    const existing = this.byId.get(descriptor.id);
    if (existing) {
      throw new ConfigError(
        "models",
        `two models have the id '${descriptor.id}' (${existing.path} and ${descriptor.path}); give one an explicit id with --model ID=PATH`,
      );
    }
    this.byId.set(descriptor.id, descriptor);
  }

  get(id: string): ModelDescriptor | undefined {
    return this.byId.get(id);
  }

  /** Stops listing a model (its files were deleted); true when it was there. */
  remove(id: string): boolean {
    return this.byId.delete(id);
  }

  list(): ModelDescriptor[] {
    return [...this.byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get size(): number {
    return this.byId.size;
  }
}

/** Entries of a models folder detected at once. */
const DETECT_CONCURRENCY = 8;

/** Files a models folder may hold as models on their own (folders are looked into as well). */
const MODEL_FILE = /\.(gguf|onnx|tflite|task|litertlm|safetensors)$/i;

/** `name.gguf` → `name`; `name-00001-of-00003.gguf` → `name`; a folder → its name. */
/** Engine options from a model's config entry (llama-server binary and arguments, transformers device and dtype). */
export function engineOptionsOf(entry: ModelEntry): ModelDescriptor["engineOptions"] {
  const { llamaServerPath, args, device, dtype, trustRemoteCode } = entry;
  const set = Object.entries({ llamaServerPath, args, device, dtype, trustRemoteCode }).filter(([, v]) => v !== undefined);
  return set.length > 0 ? Object.fromEntries(set) : undefined;
}

export function defaultModelId(path: string): string {
  return basename(path)
    .replace(/-\d{5}-of-\d{5}(?=\.gguf$)/i, "")
    .replace(/\.(gguf|onnx|tflite|task|litertlm|safetensors)$/i, "");
}

interface DescribeOptions {
  cache?: DetectionCache;
  engine?: EngineName;
  signal?: AbortSignal;
  /** Real folders symlinks inside the model may lead into, besides its own (the models folder it is in). */
  linkRoots?: string[];
  /** Warned about symlinks that were not followed, each by name, when the model is detected (not when cached). */
  logger?: Logger;
}

/** Detects what `path` holds (cached by path, size and mtime) and describes each model in it. */
export async function describeLocalModels(path: string, options: DescribeOptions = {}): Promise<{ descriptor: Omit<ModelDescriptor, "id">; detection: Detection }[]> {
  const abs = resolve(path);
  const st = await stat(abs);
  const key = DetectionCache.key(abs, st.isFile() ? st.size : -1, st.mtimeMs) + (options.engine ?? "") + (options.linkRoots?.join("\0") ?? "");
  let detections = options.cache?.get(key);
  if (!detections) {
    detections = await detectSource(abs, {
      signal: options.signal,
      engineOverride: options.engine,
      linkRoots: options.linkRoots,
      onSkippedLink: (link) => options.logger?.warn({ path: join(abs, link.path), target: link.target, reason: link.reason }, describeSkippedLink(link)),
    });
    options.cache?.set(key, detections);
  }
  return detections.map((detection) => {
    // A GGUF model's path is its first file, which is what llama.cpp opens; other formats keep their folder.
    const main = detection.files.find((f) => f.role === "weights");
    const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
    const modelPath = st.isFile() ? abs : isGguf && main ? join(abs, main.path) : abs;
    return {
      detection,
      descriptor: {
        path: modelPath,
        task: detection.task,
        engine: detection.engine?.name ?? null,
        detection,
        sizeBytes: detection.files.reduce((n, f) => n + (f.size ?? 0), 0),
        created: Math.floor(st.mtimeMs / 1000),
      },
    };
  });
}

interface FolderEntry {
  name: string;
  isFile(): boolean;
  isDirectory(): boolean;
}

/**
 * A models folder's entries, symlinks replaced by what they lead to when that stays inside the folder (or, for a
 * Hugging Face snapshot folder, its repo's blobs): a link elsewhere, or a dangling one, is skipped with a warning
 * naming it. Entries are not models yet; detection decides.
 */
async function resolveEntries(dir: string, entries: (FolderEntry & { isSymbolicLink(): boolean })[], logger?: Logger): Promise<FolderEntry[]> {
  const real = await realpath(dir);
  const roots = allowedLinkRoots(real);
  const out: FolderEntry[] = [];
  for (const e of entries) {
    if (!e.isSymbolicLink()) {
      out.push(e);
      continue;
    }
    if (e.name.startsWith(".")) continue;
    const full = join(dir, e.name);
    const target = await realpath(full).catch(() => null);
    const said = await readlink(full).catch(() => null);
    if (!target) {
      logger?.warn({ path: full, target: said }, `skipping symlink ${e.name}: its target does not exist`);
      continue;
    }
    // The folder itself would be listed again inside itself.
    if (target === real) {
      logger?.warn({ path: full, target: said }, `skipping symlink ${e.name}: it points at the models folder itself`);
      continue;
    }
    if (!roots.some((r) => isInside(target, r))) {
      logger?.warn({ path: full, target: said }, `skipping symlink ${e.name}: it points outside the models folder`);
      continue;
    }
    const st = await stat(target).catch(() => null);
    if (!st) continue;
    out.push({ name: e.name, isFile: () => st.isFile(), isDirectory: () => st.isDirectory() });
  }
  return out;
}

function checkId(id: string, from: string): void {
  if (!MODEL_ID_PATTERN.test(id)) {
    throw new ConfigError("models", `'${id}' (from ${from}) is not a valid model id; use --model ID=PATH with letters, digits and . _ : @ -`);
  }
}

interface BuildOptions {
  cache?: DetectionCache;
  ggufChoice?: GgufServingChoice | null;
  signal?: AbortSignal;
  /**
   * Collects what would be fatal instead (`tabagent config check` lists every problem): the entry or folder in
   * question is left out and the next one is tried.
   */
  onError?: (err: ConfigError) => void;
}

/**
 * Builds the registry from `--model` entries (errors are fatal: the user named them) and `--models-dir`
 * folders (entries that are not models are skipped; broken model files are skipped with a warning).
 */
export async function buildModelRegistry(config: Config, logger?: Logger, options: BuildOptions = {}): Promise<ModelRegistry> {
  const registry = new ModelRegistry([], options.ggufChoice ?? null);
  const cache = options.cache ?? new DetectionCache();
  const attempt = async (step: () => Promise<void>) => {
    try {
      await step();
    } catch (err) {
      if (!(err instanceof ConfigError) || !options.onError) throw err;
      options.onError(err);
    }
  };
  for (const [i, entry] of config.models.entries()) {
    // A hub-sourced entry names no file until its pull is done (startConfiguredPulls registers it then).
    if (entry.path.startsWith(HUB_SOURCE_PATH_PREFIX)) continue;
    await attempt(() => addConfiguredModel(registry, entry, `models[${i}]`, cache, options.signal));
  }
  for (const [i, dir] of config.modelsDirs.entries()) await attempt(() => addModelsFolder(registry, dir, `modelsDirs[${i}]`, cache, logger, options.signal));
  return registry;
}

/** A `--model` entry: exactly one model that some engine can serve, under a valid id no other model has. */
async function addConfiguredModel(registry: ModelRegistry, entry: ModelEntry, setting: string, cache: DetectionCache, signal?: AbortSignal): Promise<void> {
  let found;
  try {
    found = await describeLocalModels(entry.path, { cache, engine: entry.engine, signal });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    throw new ConfigError(setting, `cannot serve ${entry.path}: ${missing ? "no such file or folder" : (err as Error).message}`);
  }
  if (found.length !== 1) {
    throw new ConfigError(setting, `${entry.path} holds ${found.length} models; name one file, or serve the folder with --models-dir`);
  }
  if (found[0]!.detection.format === "unknown") {
    throw new ConfigError(setting, `cannot serve ${entry.path}: not a model (${found[0]!.detection.reason})`);
  }
  const id = entry.id ?? defaultModelId(found[0]!.descriptor.path);
  checkId(id, entry.path);
  const engineOptions = engineOptionsOf(entry);
  registry.add({ id, ...found[0]!.descriptor, ...(engineOptions ? { engineOptions } : {}) });
}

/** Every model in a `--models-dir` folder, in name order; what is not a model is skipped with a warning. */
async function addModelsFolder(registry: ModelRegistry, dir: string, setting: string, cache: DetectionCache, logger?: Logger, signal?: AbortSignal): Promise<void> {
  let entries;
  try {
    entries = await readdir(resolve(dir), { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such folder" : code === "ENOTDIR" ? "not a folder" : (err as Error).message;
    throw new ConfigError(setting, `cannot read ${dir}: ${why}`);
  }
  const candidates = (await resolveEntries(resolve(dir), entries, logger))
    .sort((a, b) => a.name.localeCompare(b.name))
    .filter((e) => !e.name.startsWith(".") && (e.isFile() || e.isDirectory()) && !(e.isFile() && (!MODEL_FILE.test(e.name) || isProjectorFile(e.name))));
  const linkRoots = allowedLinkRoots(await realpath(resolve(dir)));
  // Detection is mostly waiting on file system round trips: several entries at once overlap them. Results are
  // added in name order below, so ids and warnings do not depend on which detection finished first.
  const results = new Array<Awaited<ReturnType<typeof describeLocalModels>> | Error>(candidates.length);
  let next = 0;
  const worker = async () => {
    while (next < candidates.length) {
      const i = next++;
      const full = join(resolve(dir), candidates[i]!.name);
      results[i] = await describeLocalModels(full, { cache, signal, linkRoots, logger }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    }
  };
  await Promise.all(Array.from({ length: Math.min(DETECT_CONCURRENCY, candidates.length) }, worker));
  for (const [i, e] of candidates.entries()) {
    const full = join(resolve(dir), e.name);
    const found = results[i]!;
    if (found instanceof Error) {
      logger?.warn({ path: full, err: found.message }, "skipping: not a readable model");
      continue;
    }
    for (const { descriptor, detection } of found) {
      if (detection.format === "unknown") {
        if (e.isFile()) logger?.warn({ path: full, reason: detection.reason }, "skipping: not a model file");
        continue;
      }
      const isGguf = detection.format === "gguf" || detection.format === "bitnet-gguf";
      const id = defaultModelId(e.isDirectory() && !isGguf ? full : descriptor.path);
      if (!MODEL_ID_PATTERN.test(id)) {
        logger?.warn({ path: descriptor.path }, "skipping model: its name is not a valid model id");
        continue;
      }
      if (registry.get(id)) {
        logger?.warn({ path: descriptor.path, id }, "skipping model: another model already has this id");
        continue;
      }
      registry.add({ id, ...descriptor });
    }
  }
}
