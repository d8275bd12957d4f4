import type { ModelFileSystem } from "../ModelFileSystem.js";
import {
  InvalidSafetensorsError,
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsDtypeStats,
  type SafetensorsHeader,
} from "../safetensors/readSafetensorsHeader.js";
import { sniffWeightsMagic, type WeightsMagic } from "./sniffWeightsMagic.js";

export interface InvalidShard {
  path: string;
  message: string;
  /** The first bytes say it is something else (a renamed GGUF or pickle file). */
  actualFormat: Exclude<WeightsMagic, "safetensors" | "unknown"> | null;
}

export interface SafetensorsShardsSummary {
  /** Sum over every shard; null when a shard could not be read (a partial sum would mislead). */
  parameterCount: number | null;
  tensorCount: number;
  dtypes: Partial<Record<SafetensorsDtype, SafetensorsDtypeStats>>;
  /** The dtype holding the most parameters (the one that matters for memory), null without tensors. */
  dominantDtype: SafetensorsDtype | null;
  invalid: InvalidShard[];
  /** `__metadata__` of the first readable shard (`{format: "pt"}` and the like). */
  metadata: Record<string, string> | null;
}

/** Several shards at once: for a remote repo each header is two HTTP round trips. */
const CONCURRENCY = 4;

/** Reads the (bounded) header of every shard: dtypes and parameter count without touching tensor data. */
export async function summarizeSafetensorsShards(fs: ModelFileSystem, paths: readonly string[], signal?: AbortSignal): Promise<SafetensorsShardsSummary> {
  const results = new Array<ShardResult>(paths.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      results[i] = await readOne(fs, paths[i]!, signal);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, paths.length) }, worker));

  const dtypes: Partial<Record<SafetensorsDtype, SafetensorsDtypeStats>> = {};
  const invalid: InvalidShard[] = [];
  let parameterCount = 0;
  let tensorCount = 0;
  let metadata: Record<string, string> | null = null;
  for (const r of results) {
    if (!("header" in r)) {
      invalid.push(r);
      continue;
    }
    parameterCount += r.header.parameterCount;
    tensorCount += r.header.tensors.length;
    metadata ??= r.header.metadata;
    for (const [dtype, s] of Object.entries(r.header.dtypes) as Array<[SafetensorsDtype, SafetensorsDtypeStats]>) {
      const acc = (dtypes[dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
      acc.tensors += s.tensors;
      acc.parameters += s.parameters;
      acc.bytes += s.bytes;
    }
  }
  let dominantDtype: SafetensorsDtype | null = null;
  for (const [dtype, s] of Object.entries(dtypes) as Array<[SafetensorsDtype, SafetensorsDtypeStats]>) {
    const best = dominantDtype ? dtypes[dominantDtype]! : null;
    if (!best || s.parameters > best.parameters || (s.parameters === best.parameters && s.bytes > best.bytes)) {
      dominantDtype = dtype;
    }
  }
  return {
    parameterCount: invalid.length === 0 && Number.isSafeInteger(parameterCount) ? parameterCount : null,
    tensorCount,
    dtypes,
    dominantDtype,
    invalid,
    metadata,
  };
}

type ShardResult = { path: string; header: SafetensorsHeader } | InvalidShard;

async function readOne(fs: ModelFileSystem, path: string, signal?: AbortSignal): Promise<ShardResult> {
  let src;
  try {
    src = await fs.open(path, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    return { path, message: `cannot open: ${(err as Error).message}`, actualFormat: null } satisfies InvalidShard;
  }
  try {
    return { path, header: await readSafetensorsHeader(src, { signal }) };
  } catch (err) {
    if (signal?.aborted) throw err;
    if (!(err instanceof InvalidSafetensorsError)) {
      return { path, message: `cannot read: ${(err as Error).message}`, actualFormat: null } satisfies InvalidShard;
    }
    // Only on failure: one more small read to say what the file really is.
    const head = src.size > 0 ? await src.read(0, Math.min(8, src.size), signal).catch(() => new Uint8Array(0)) : new Uint8Array(0);
    const magic = sniffWeightsMagic(head);
    return { path, message: err.message, actualFormat: magic === "safetensors" || magic === "unknown" ? null : magic };
  } finally {
    await src.close().catch(() => undefined);
  }
}
