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
  operatorCodeCount: number;
  bufferCount: number;
  /** Tensors of the first subgraph. */
  tensorCount: number;
  bytesRead: number;
}

export interface ReadTfliteSummaryOptions {
  signal?: AbortSignal;
  /** Where the model starts in the source (a `.litertlm` section, a stored `.task` entry); default 0. */
  base?: number;
  /** The model's length; default the rest of the source. */
  length?: number;
  /**
   * Check that buffers stored past the FlatBuffer (offset/size) lie inside the model (default true). A `.litertlm`
   * keeps weights in sections of their own, which such offsets may point to.
   */
  checkExternalBuffers?: boolean;
}

/** The schema version every TFLite runtime since 2017 requires (TFLITE_SCHEMA_VERSION). */
const SCHEMA_VERSION = 3;
const MAX_ITEMS = 64;
/** How much of a model the structural check walks: enough for any real graph's index tables, bounded for hostile ones. */
const MAX_CHECKED_SUBGRAPHS = 16;
const MAX_CHECKED_TENSORS = 8192;
const MAX_CHECKED_OPERATORS = 8192;
const MAX_CHECKED_INDICES = 64;
const MAX_CHECKED_BUFFERS = 8192;
/** Buffers whose data length is read (a 4-byte read each, wherever the data lies: one request each over HTTP). */
const MAX_CHECKED_BUFFER_DATA = 256;

/** True when bytes 4..8 are the TFLite FlatBuffer file identifier. */
export function hasTfl3Identifier(head: Uint8Array): boolean {
  return head.length >= 8 && head[4] === 0x54 && head[5] === 0x46 && head[6] === 0x4c && head[7] === 0x33;
}

/** Indices in an int32 vector field: each must be in [min, max). */
async function checkIndices(fb: FlatBufferReader, table: number, slot: number, min: number, max: number, what: string): Promise<void> {
  const at = await fb.field(table, slot);
  if (at === null) return;
  const { items } = await fb.vector(at, 4, MAX_CHECKED_INDICES);
  for (const p of items) {
    const i = await fb.i32(p);
    if (i < min || i >= max) throw new InvalidLiteRtError(`${what} refers to tensor ${i}, outside 0..${max - 1}`);
  }
}

/**
 * What the TFLite interpreter checks before it runs anything (InterpreterBuilder): schema version 3, at least one
 * subgraph, a buffers table, every tensor's buffer index and every operator's opcode index in range, subgraph and
 * operator tensor indices in range; plus every weight buffer inside the file. Bounded: the first subgraphs,
 * tensors, operators and buffers are walked, which covers real graphs' index tables.
 */
async function checkModel(
  fb: FlatBufferReader,
  model: number,
  version: number | null,
  checkExternalBuffers: boolean,
): Promise<{ opcodes: number; buffers: number; tensors: number }> {
  if (version !== SCHEMA_VERSION) throw new InvalidLiteRtError(`TFLite schema version ${version ?? "(missing)"}, the runtime requires ${SCHEMA_VERSION}`);
  const opcodesAt = await fb.field(model, 1);
  if (opcodesAt === null) throw new InvalidLiteRtError("no operator_codes table");
  const opcodes = await fb.vectorLength(opcodesAt, 4);
  const subgraphsAt = await fb.field(model, 2);
  if (subgraphsAt === null) throw new InvalidLiteRtError("no subgraphs");
  const buffersAt = await fb.field(model, 4);
  if (buffersAt === null) throw new InvalidLiteRtError("no buffers table");
  const buffers = await fb.vectorLength(buffersAt, 4);

  const { count: subgraphCount, tables: subgraphs } = await fb.tables(subgraphsAt, MAX_CHECKED_SUBGRAPHS);
  if (subgraphCount === 0) throw new InvalidLiteRtError("no subgraphs");
  let tensorBudget = MAX_CHECKED_TENSORS;
  let operatorBudget = MAX_CHECKED_OPERATORS;
  let firstTensors = 0;
  for (const [si, sg] of subgraphs.entries()) {
    const tensorsAt = await fb.field(sg, 0);
    if (tensorsAt === null) throw new InvalidLiteRtError(`subgraph ${si} has no tensors table`);
    const { count: tensorCount, tables: tensors } = await fb.tables(tensorsAt, Math.max(0, tensorBudget));
    if (si === 0) firstTensors = tensorCount;
    tensorBudget -= tensors.length;
    for (const [ti, t] of tensors.entries()) {
      const bufferAt = await fb.field(t, 2);
      const buffer = bufferAt === null ? 0 : await fb.u32(bufferAt);
      if (buffer >= buffers) throw new InvalidLiteRtError(`subgraph ${si} tensor ${ti} uses buffer ${buffer} of ${buffers}`);
    }
    await checkIndices(fb, sg, 1, 0, tensorCount, `subgraph ${si} input`);
    await checkIndices(fb, sg, 2, 0, tensorCount, `subgraph ${si} output`);
    const operatorsAt = await fb.field(sg, 3);
    if (operatorsAt === null) continue;
    const { tables: operators } = await fb.tables(operatorsAt, Math.max(0, operatorBudget));
    operatorBudget -= operators.length;
    for (const [oi, op] of operators.entries()) {
      const codeAt = await fb.field(op, 0);
      const code = codeAt === null ? 0 : await fb.u32(codeAt);
      if (code >= opcodes) throw new InvalidLiteRtError(`subgraph ${si} operator ${oi} uses opcode ${code} of ${opcodes}`);
      // -1 marks an optional input or output that is absent.
      await checkIndices(fb, op, 1, -1, tensorCount, `subgraph ${si} operator ${oi} input`);
      await checkIndices(fb, op, 2, -1, tensorCount, `subgraph ${si} operator ${oi} output`);
    }
  }

  const { tables: bufferTables } = await fb.tables(buffersAt, MAX_CHECKED_BUFFERS);
  for (const [bi, b] of bufferTables.entries()) {
    const dataAt = await fb.field(b, 0);
    if (dataAt !== null && bi < MAX_CHECKED_BUFFER_DATA) await fb.vectorLength(dataAt, 1);
    // Buffers past 2 GB live after the FlatBuffer: offset/size from the start of the model (offset 0 or 1 = unused).
    const offsetAt = await fb.field(b, 1);
    const sizeAt = await fb.field(b, 2);
    const offset = offsetAt === null ? 0 : await fb.u64(offsetAt);
    const size = sizeAt === null ? 0 : await fb.u64(sizeAt);
    if (checkExternalBuffers && offset > 1 && offset + size > fb.length)
      throw new InvalidLiteRtError(`buffer ${bi} (${size} bytes at ${offset}) lies past the end of the ${fb.length}-byte model`);
  }
  return { opcodes, buffers, tensors: firstTensors };
}

/**
 * The parts of a TFLite `Model` table that hint at what the model does: its description, metadata names, subgraph
 * names and signature defs (LLM exports sign `prefill` and `decode`), after checking the structure the interpreter
 * relies on (checkModel). Fetches a few 16 KiB blocks and a few bytes per buffer, never weights. Field slots follow
 * tensorflow/lite/schema/schema.fbs.
 */
export async function readTfliteSummary(src: ByteSource, options: ReadTfliteSummaryOptions = {}): Promise<TfliteSummary> {
  const base = options.base ?? 0;
  const length = options.length ?? src.size - base;
  if (length < 16) throw new InvalidLiteRtError("too small to be a TFLite model");
  const fb = new FlatBufferReader(src, { signal: options.signal, base, length });
  if (!hasTfl3Identifier(await fb.bytes(0, 8))) throw new InvalidLiteRtError("no TFL3 file identifier at byte 4");
  const rootOffset = await fb.u32(0);
  if (rootOffset < 8 || rootOffset + 4 > length) throw new InvalidLiteRtError(`root table offset ${rootOffset} is outside the model`);
  const model = await fb.root();

  const versionAt = await fb.field(model, 0);
  const version = versionAt === null ? null : await fb.u32(versionAt);
  const counts = await checkModel(fb, model, version, options.checkExternalBuffers ?? true);
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
      const name = nameAt === null ? "" : await fb.string(nameAt, 256);
      const bufferAt = await fb.field(m, 1);
      const buffer = bufferAt === null ? 0 : await fb.u32(bufferAt);
      if (buffer >= counts.buffers) throw new InvalidLiteRtError(`metadata ${name || "(unnamed)"} uses buffer ${buffer} of ${counts.buffers}`);
      if (nameAt !== null) metadata.push(name);
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
  return {
    version,
    description,
    subgraphCount,
    subgraphNames,
    metadata,
    signatures,
    operatorCodeCount: counts.opcodes,
    bufferCount: counts.buffers,
    tensorCount: counts.tensors,
    bytesRead: fb.bytesRead,
  };
}
