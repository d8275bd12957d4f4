import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { ModelDescriptor } from "../core/types.js";
import { openFileByteSource } from "../detection/gguf/ByteSource.js";
import { readGgufHeader } from "../detection/gguf/readGgufHeader.js";
import { summarizeGguf, type GgufSummary } from "../detection/gguf/summarizeGguf.js";

export function defaultModelId(path: string): string {
  return basename(path).replace(/\.gguf$/i, "");
}

export interface DescribedGguf {
  descriptor: ModelDescriptor;
  summary: GgufSummary;
}

/** Reads only the header of a local GGUF file and describes it as a servable model. */
export async function describeGgufFile(path: string, id = defaultModelId(path), signal?: AbortSignal): Promise<DescribedGguf> {
  const st = await stat(path);
  if (!st.isFile()) throw new Error(`${path} is not a file`);
  const src = await openFileByteSource(path);
  try {
    const summary = summarizeGguf(await readGgufHeader(src, { signal }));
    return {
      summary,
      descriptor: {
        id,
        path,
        format: "gguf",
        task: summary.task,
        backend: "node-llama-cpp",
        sizeBytes: st.size,
        architecture: summary.architecture,
        name: summary.name,
        contextLength: summary.contextLength,
        hasChatTemplate: summary.chatTemplate !== null,
        created: Math.floor(st.mtimeMs / 1000),
      },
    };
  } finally {
    await src.close();
  }
}
