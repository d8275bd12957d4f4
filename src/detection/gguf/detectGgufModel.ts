import type { FormatDetection, ModelFile } from "../../core/detectionSchema.js";
import type { ModelFileEntry, ModelFileSystem } from "../ModelFileSystem.js";
import { decideGgufFlavor, type TensorTypeUse } from "./decideGgufFlavor.js";
import { BITNET_FILE_TYPES, LLAMA_FILE_TYPES, ggmlTypeName } from "./ggmlTypes.js";
import { InvalidGgufError, readGgufHeader } from "./readGgufHeader.js";
import { summarizeGguf } from "./summarizeGguf.js";
import { validateGgufHeader } from "./validateGgufHeader.js";

export interface GgufModelFiles {
  /** The file an engine opens (the first shard of a split model). */
  main: ModelFileEntry;
  /** The other shards, in order. */
  shards: ModelFileEntry[];
  /** A vision projector that belongs to this model. */
  projector: ModelFileEntry | null;
}

/**
 * Describes one GGUF model from its header (never tensor data). Throws InvalidGgufError, naming the reason, for a
 * file llama.cpp would refuse or abort on (see validateGgufHeader).
 */
export async function detectGgufModel(fs: ModelFileSystem, model: GgufModelFiles, signal?: AbortSignal): Promise<FormatDetection> {
  const src = await fs.open(model.main.path, signal);
  let header;
  const fileSize = src.size;
  try {
    header = await readGgufHeader(src, { signal, scanTokens: true });
  } finally {
    await src.close();
  }
  const summary = summarizeGguf(header);

  const uses = new Map<number, TensorTypeUse>();
  let parameterCount = 0;
  for (const t of header.tensors) {
    const u = uses.get(t.type);
    if (u) u.count++;
    else uses.set(t.type, { type: t.type, count: 1, example: t.name });
    parameterCount += t.dims.reduce((a, b) => a * b, 1);
  }
  const tensorTypes = [...uses.values()].sort((a, b) => b.count - a.count);
  const flavor = decideGgufFlavor(summary.architecture, tensorTypes);
  const validation = validateGgufHeader(header, { fileSize, bitnet: flavor.bitnet });
  if (validation.problems.length > 0) {
    throw new InvalidGgufError(`not a GGUF llama.cpp can load: ${validation.problems.slice(0, 3).join("; ")}`);
  }

  const fileTypeName =
    summary.fileType === null
      ? null
      : ((flavor.bitnet ? BITNET_FILE_TYPES[summary.fileType] : undefined) ?? LLAMA_FILE_TYPES[summary.fileType] ?? `file type ${summary.fileType}`);
  // Without general.file_type, the most used type among 2-D tensors is the best guess.
  const dominant = [...header.tensors.filter((t) => t.dims.length >= 2).reduce((m, t) => m.set(t.type, (m.get(t.type) ?? 0) + 1), new Map<number, number>())].sort(
    (a, b) => b[1] - a[1],
  )[0]?.[0];
  const quantization = fileTypeName ?? (dominant === undefined ? null : ggmlTypeName(dominant, flavor.bitnet));

  const files: ModelFile[] = [
    { path: model.main.path, size: model.main.size, role: "weights" },
    ...model.shards.map((s) => ({ path: s.path, size: s.size, role: "weights" as const })),
    ...(model.projector ? [{ path: model.projector.path, size: model.projector.size, role: "projector" as const }] : []),
  ];
  const warnings: string[] = [...validation.warnings];
  const splitCount = header.metadata.get("split.count");
  if (typeof splitCount === "number" && splitCount > 1 + model.shards.length) {
    warnings.push(`split model: ${splitCount} files expected, ${1 + model.shards.length} found`);
  }
  if (summary.generalType === "mmproj" || summary.architecture === "clip") {
    warnings.push("this file is a vision projector (mmproj), not a model on its own");
  }

  return {
    format: flavor.bitnet ? "bitnet-gguf" : "gguf",
    task: summary.task,
    reason: `GGUF header: ${summary.taskReason}; ${flavor.reason}`,
    architecture: summary.architecture,
    parameterCount,
    quantization,
    contextLength: summary.contextLength !== null && summary.contextLength > 0 ? summary.contextLength : null,
    hasChatTemplate: summary.chatTemplate !== null,
    files,
    warnings,
    details: {
      name: summary.name,
      ggufVersion: header.version,
      fileType: summary.fileType,
      poolingType: summary.poolingType,
      tensorCount: header.tensors.length,
      tensorTypes: Object.fromEntries(tensorTypes.map((t) => [ggmlTypeName(t.type, flavor.bitnet), t.count])),
      flavorReason: flavor.reason,
      hasVisionProjector: model.projector !== null,
    },
  };
}
