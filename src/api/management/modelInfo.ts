import type { ModelDescriptor } from "../../core/types.js";
import { ENGINES } from "../../engines/engineTable.js";
import type { Capability } from "../../engines/capabilities.js";
import type { ModelStatus } from "../../router/ModelRouter.js";
import type { OriginInfo } from "./ManagementStore.js";

export type OriginOf = (id: string) => OriginInfo | undefined;

function capabilities(d: ModelDescriptor): Capability[] {
  if (d.engine === null) return [];
  const caps = ENGINES[d.engine].capabilities;
  return (Object.keys(caps) as Capability[]).filter((c) => caps[c]);
}

/** One model as `GET /api/models` lists it (docs/api.md "Management API"). */
export function modelInfo(s: ModelStatus, originOf: OriginOf, memoryOf: (d: ModelDescriptor) => number) {
  const d = s.descriptor;
  const det = d.detection;
  const upstream = d.engine === "upstream";
  const origin = s.aliasOf ? "alias" : upstream ? "upstream" : (originOf(d.id)?.origin ?? "config");
  return {
    id: d.id,
    format: upstream ? "upstream" : det.format,
    task: d.task,
    engine: d.engine,
    engine_reason: det.engine?.reason ?? null,
    alternatives: det.alternatives,
    capabilities: capabilities(d),
    state: s.state,
    running: s.running,
    queued: s.queued,
    origin,
    removable: origin === "store",
    path: upstream ? null : d.path,
    architecture: det.architecture,
    parameters: det.parameterCount,
    quantization: det.quantization,
    context_length: det.contextLength,
    chat_template: det.hasChatTemplate,
    size_bytes: d.sizeBytes,
    memory_bytes: upstream ? 0 : memoryOf(d),
    warnings: det.warnings,
    ...(d.upstream ? { upstream: d.upstream.name, upstream_model: d.upstream.model } : {}),
    ...(d.chatTemplateProblem ? { chat_template_error: d.chatTemplateProblem } : {}),
    ...(s.runtime ? { runtime: s.runtime } : {}),
    ...(s.aliasOf ? { alias_of: s.aliasOf } : {}),
    ...(s.download ? { download: { done_bytes: s.download.doneBytes, total_bytes: s.download.totalBytes, error: s.download.error } } : {}),
  };
}
