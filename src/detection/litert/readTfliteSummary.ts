import type { ByteSource } from "../gguf/ByteSource.js";
import { FlatBufferReader } from "./FlatBufferReader.js";
import { InvalidLiteRtError } from "./InvalidLiteRtError.js";

export interface TfliteSignature {
  key: string;
  inputs: string[];
  outputs: string[];
}

export interface TfliteSummary {
  /** Model.version (the schema version, 3 today). */
  version: number | null;
  description: string | null;
  subgraphCount: number;
  subgraphNames: string[];
  /** Model.metadata names (`min_runtime_version`, `TFLITE_METADATA`, ...). */
  metadata: string[];
  signatures: TfliteSignature[];
  bytesRead: number;
}

const MAX_ITEMS = 64;

/** True when bytes 4..8 are the TFLite FlatBuffer file identifier. */
export function hasTfl3Identifier(head: Uint8Array): boolean {
  return head.length >= 8 && head[4] === 0x54 && head[5] === 0x46 && head[6] === 0x4c && head[7] === 0x33;
}

/**
 * The parts of a TFLite `Model` table that hint at what the model does: its description, metadata names, subgraph
 * names and signature defs (LLM exports sign `prefill` and `decode`). Fetches a few 16 KiB blocks, never weights.
 * Field slots follow tensorflow/lite/schema/schema.fbs.
 */
export async function readTfliteSummary(src: ByteSource, options: { signal?: AbortSignal } = {}): Promise<TfliteSummary> {
  if (src.size < 16) throw new InvalidLiteRtError("file too small to be a TFLite model");
  const fb = new FlatBufferReader(src, { signal: options.signal });
  if (!hasTfl3Identifier(await fb.bytes(0, 8))) throw new InvalidLiteRtError("no TFL3 file identifier at byte 4");
  const model = await fb.root();

  const versionAt = await fb.field(model, 0);
  const version = versionAt === null ? null : await fb.u32(versionAt);
  const descriptionAt = await fb.field(model, 3);
  const description = descriptionAt === null ? null : await fb.string(descriptionAt, 1024);

  let subgraphCount = 0;
  const subgraphNames: string[] = [];
  const subgraphsAt = await fb.field(model, 2);
  if (subgraphsAt !== null) {
    const { count, tables } = await fb.tables(subgraphsAt, MAX_ITEMS);
    subgraphCount = count;
    for (const sg of tables) {
      const nameAt = await fb.field(sg, 4);
      if (nameAt !== null) subgraphNames.push(await fb.string(nameAt, 256));
    }
  }

  const metadata: string[] = [];
  const metadataAt = await fb.field(model, 6);
  if (metadataAt !== null) {
    for (const m of (await fb.tables(metadataAt, MAX_ITEMS)).tables) {
      const nameAt = await fb.field(m, 0);
      if (nameAt !== null) metadata.push(await fb.string(nameAt, 256));
    }
  }

  const names = async (table: number, slot: number): Promise<string[]> => {
    const at = await fb.field(table, slot);
    if (at === null) return [];
    const out: string[] = [];
    for (const tm of (await fb.tables(at, MAX_ITEMS)).tables) {
      const nameAt = await fb.field(tm, 0);
      if (nameAt !== null) out.push(await fb.string(nameAt, 256));
    }
    return out;
  };
  const signatures: TfliteSignature[] = [];
  const signaturesAt = await fb.field(model, 7);
  if (signaturesAt !== null) {
    for (const sd of (await fb.tables(signaturesAt, MAX_ITEMS)).tables) {
      const keyAt = await fb.field(sd, 2);
      signatures.push({
        key: keyAt === null ? "" : await fb.string(keyAt, 256),
        inputs: await names(sd, 0),
        outputs: await names(sd, 1),
      });
    }
  }
  return { version, description, subgraphCount, subgraphNames, metadata, signatures, bytesRead: fb.bytesRead };
}
