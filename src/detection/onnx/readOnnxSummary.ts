import type { ByteSource } from "../gguf/ByteSource.js";
import { onnxDataTypeName } from "./onnxDataTypes.js";
import { InvalidOnnxError, ProtoCursor, Wire, type ProtoLimits } from "./ProtoCursor.js";

export { InvalidOnnxError } from "./ProtoCursor.js";

export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  kind: "tensor" | "sparse-tensor" | "sequence" | "map" | "optional" | "unknown";
  /** Element type name (`float32`, `int64`, ...); for sequences/optionals, that of the tensor inside. */
  elemType: string | null;
  /** Dimensions: a number, a symbolic name (`batch_size`), or null when unset; null when no shape is given. */
  shape: OnnxDim[] | null;
}

export interface OnnxExternalData {
  /** As written in the model (relative to the model file's folder); not yet checked. */
  location: string;
  tensors: number;
  /** Sum of the `length` entries; null when some tensor does not give one. */
  bytes: number | null;
}

export interface OnnxSummary {
  irVersion: number | null;
  producerName: string | null;
  producerVersion: string | null;
  opsets: { domain: string; version: number }[];
  /** ModelProto.metadata_props (bounded). */
  metadata: Record<string, string>;
  graphName: string | null;
  /** Graph inputs, less those that name an initializer (IR < 4 lists weights as inputs). */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  nodeCount: number;
  /** Nodes without an op_type (onnxruntime cannot resolve them). */
  nodesWithoutOp: number;
  /** Node count per operator (`domain::op` outside the default domain), bounded. */
  opTypes: Record<string, number>;
  initializerCount: number;
  sparseInitializerCount: number;
  /** Elements over all dense initializers (a parameter count for unpacked weights). */
  initializerElements: number;
  /** Elements per element type name. */
  initializerTypes: Record<string, number>;
  /** Tensor bytes stored inside the file (raw_data and typed data fields). */
  inlineDataBytes: number;
  externalData: OnnxExternalData[];
  bytesRead: number;
  reads: number;
  fieldsVisited: number;
}

interface ReadOnnxSummaryOptions extends Partial<ProtoLimits> {
  signal?: AbortSignal;
}

const DEFAULT_LIMITS: ProtoLimits = { maxReadBytes: 8 << 20, maxFields: 2_000_000, maxDepth: 16 };
const MAX_NAME = 64 << 10;
const MAX_VALUE_INFOS = 10_000;
const MAX_DIMS = 64;
const MAX_OP_TYPES = 512;
const MAX_METADATA = 64;
const MAX_METADATA_VALUE = 4096;
const MAX_EXTERNAL_LOCATIONS = 1024;
const MAX_INITIALIZER_NAMES = 200_000;

interface TensorFacts {
  dims: number[];
  dataType: number;
  inlineBytes: number;
  name: string | null;
  dataLocation: number;
  external: Map<string, string>;
}

/** Mutable state of one walk. */
class Walk {
  irVersion: number | null = null;
  producerName: string | null = null;
  producerVersion: string | null = null;
  opsets: { domain: string; version: number }[] = [];
  metadata = new Map<string, string>();
  graphName: string | null = null;
  sawGraph = false;
  inputs: OnnxValueInfo[] = [];
  outputs: OnnxValueInfo[] = [];
  nodeCount = 0;
  nodesWithoutOp = 0;
  opTypes = new Map<string, number>();
  initializerCount = 0;
  sparseInitializerCount = 0;
  initializerElements = 0;
  initializerTypes = new Map<string, number>();
  initializerNames = new Set<string>();
  inlineDataBytes = 0;
  external = new Map<string, OnnxExternalData>();

  constructor(readonly c: ProtoCursor) {}

  async model(): Promise<void> {
    const c = this.c;
    const end = c.size;
    await c.message(end, 0, async (field, wire) => {
      switch (field) {
        case 1:
          c.expect(field, wire, Wire.VARINT, "ModelProto");
          this.irVersion = await c.varint(end);
          return true;
        case 2:
          c.expect(field, wire, Wire.LEN, "ModelProto");
          this.producerName = await c.stringOrSkip(end, MAX_METADATA_VALUE);
          return true;
        case 3:
          c.expect(field, wire, Wire.LEN, "ModelProto");
          this.producerVersion = await c.stringOrSkip(end, MAX_METADATA_VALUE);
          return true;
        case 7:
          c.expect(field, wire, Wire.LEN, "ModelProto");
          this.sawGraph = true;
          await this.graph(await c.lengthEnd(end), 1);
          return true;
        case 8:
          c.expect(field, wire, Wire.LEN, "ModelProto");
          await this.opset(await c.lengthEnd(end), 1);
          return true;
        case 14:
          c.expect(field, wire, Wire.LEN, "ModelProto");
          await this.metadataProp(await c.lengthEnd(end), 1);
          return true;
        default:
          return false;
      }
    });
  }

  private async opset(end: number, depth: number): Promise<void> {
    const c = this.c;
    let domain = "";
    let version = 0;
    await c.message(end, depth, async (field, wire) => {
      if (field === 1 && wire === Wire.LEN) domain = (await c.stringOrSkip(end, MAX_METADATA_VALUE)) ?? "";
      else if (field === 2 && wire === Wire.VARINT) version = await c.varint(end);
      else return false;
      return true;
    });
    if (this.opsets.length < 256) this.opsets.push({ domain, version });
  }

  private async metadataProp(end: number, depth: number): Promise<void> {
    const [key, value] = await this.stringPair(end, depth);
    if (key !== null && value !== null && this.metadata.size < MAX_METADATA) this.metadata.set(key, value);
  }

  /** A StringStringEntryProto (key 1, value 2). */
  private async stringPair(end: number, depth: number): Promise<[string | null, string | null]> {
    const c = this.c;
    let key: string | null = null;
    let value: string | null = null;
    await c.message(end, depth, async (field, wire) => {
      if (field === 1 && wire === Wire.LEN) key = await c.stringOrSkip(end, MAX_METADATA_VALUE);
      else if (field === 2 && wire === Wire.LEN) value = await c.stringOrSkip(end, MAX_METADATA_VALUE);
      else return false;
      return true;
    });
    return [key, value];
  }

  private async graph(end: number, depth: number): Promise<void> {
    const c = this.c;
    await c.message(end, depth, async (field, wire) => {
      switch (field) {
        case 1:
          c.expect(field, wire, Wire.LEN, "GraphProto");
          await this.node(await c.lengthEnd(end), depth + 1);
          return true;
        case 2:
          c.expect(field, wire, Wire.LEN, "GraphProto");
          this.graphName = await c.stringOrSkip(end, MAX_METADATA_VALUE);
          return true;
        case 5:
          c.expect(field, wire, Wire.LEN, "GraphProto");
          this.addInitializer(await this.tensor(await c.lengthEnd(end), depth + 1));
          return true;
        case 11:
        case 12: {
          c.expect(field, wire, Wire.LEN, "GraphProto");
          const list = field === 11 ? this.inputs : this.outputs;
          if (list.length >= MAX_VALUE_INFOS) {
            throw new InvalidOnnxError(`the graph has more than ${MAX_VALUE_INFOS} ${field === 11 ? "inputs" : "outputs"}`, "limit");
          }
          list.push(await this.valueInfo(await c.lengthEnd(end), depth + 1));
          return true;
        }
        case 15:
          this.sparseInitializerCount++;
          return false;
        default:
          return false;
      }
    });
  }

  private async node(end: number, depth: number): Promise<void> {
    const c = this.c;
    let op = "";
    let domain = "";
    // A graph has thousands of nodes, each a few hundred bytes: when one is in the window, walk it without promises.
    if (c.buffered(end)) {
      c.checkDepth(depth);
      while (c.pos < end) {
        const key = c.tagSync(end);
        const field = Math.floor(key / 8);
        const wire = key % 8;
        if (field === 4 && wire === Wire.LEN) op = c.stringOrSkipSync(end, 256) ?? "?";
        else if (field === 7 && wire === Wire.LEN) domain = c.stringOrSkipSync(end, 256) ?? "?";
        else c.skipSync(wire, end);
      }
      if (c.pos !== end) throw new InvalidOnnxError(`message overruns its end (byte ${end})`, "bad-length");
      this.countNode(op, domain);
      return;
    }
    await c.message(end, depth, async (field, wire) => {
      // input/output/name/attributes are skipped by offset: only the operator matters here.
      if (field === 4 && wire === Wire.LEN) op = (await c.stringOrSkip(end, 256)) ?? "?";
      else if (field === 7 && wire === Wire.LEN) domain = (await c.stringOrSkip(end, 256)) ?? "?";
      else return false;
      return true;
    });
    this.countNode(op, domain);
  }

  private countNode(op: string, domain: string): void {
    this.nodeCount++;
    if (op === "") this.nodesWithoutOp++;
    const key = domain && domain !== "ai.onnx" ? `${domain}::${op}` : op;
    if (this.opTypes.has(key) || this.opTypes.size < MAX_OP_TYPES) this.opTypes.set(key, (this.opTypes.get(key) ?? 0) + 1);
  }

  private async tensor(end: number, depth: number): Promise<TensorFacts> {
    const c = this.c;
    const t: TensorFacts = { dims: [], dataType: 0, inlineBytes: 0, name: null, dataLocation: 0, external: new Map() };
    await c.message(end, depth, async (field, wire) => {
      switch (field) {
        case 1: // dims: repeated int64, packed or not
          if (wire === Wire.VARINT) t.dims.push(await c.varint(end));
          else if (wire === Wire.LEN) {
            const to = await c.lengthEnd(end);
            while (c.pos < to) {
              if (t.dims.length >= MAX_DIMS) throw new InvalidOnnxError(`tensor with more than ${MAX_DIMS} dims`, "limit");
              t.dims.push(await c.varint(to));
            }
          } else return false;
          if (t.dims.length > MAX_DIMS) throw new InvalidOnnxError(`tensor with more than ${MAX_DIMS} dims`, "limit");
          return true;
        case 2:
          c.expect(field, wire, Wire.VARINT, "TensorProto");
          t.dataType = await c.varint(end);
          return true;
        case 4: // float_data, int32_data, string_data, int64_data, raw_data, double_data, uint64_data
        case 5:
        case 6:
        case 7:
        case 9:
        case 10:
        case 11:
          t.inlineBytes += await c.skip(wire, end);
          return true;
        case 8:
          c.expect(field, wire, Wire.LEN, "TensorProto");
          t.name = await c.string(end, MAX_NAME);
          return true;
        case 13: {
          c.expect(field, wire, Wire.LEN, "TensorProto");
          const [key, value] = await this.stringPair(await c.lengthEnd(end), depth + 1);
          if (key !== null && value !== null && t.external.size < 16) t.external.set(key, value);
          return true;
        }
        case 14:
          c.expect(field, wire, Wire.VARINT, "TensorProto");
          t.dataLocation = await c.varint(end);
          return true;
        default:
          return false;
      }
    });
    return t;
  }

  private addInitializer(t: TensorFacts): void {
    this.initializerCount++;
    if (t.name !== null && this.initializerNames.size < MAX_INITIALIZER_NAMES) this.initializerNames.add(t.name);
    let elements = 1;
    for (const d of t.dims) elements *= Math.max(0, d);
    this.initializerElements += elements;
    const type = onnxDataTypeName(t.dataType);
    this.initializerTypes.set(type, (this.initializerTypes.get(type) ?? 0) + elements);
    this.inlineDataBytes += t.inlineBytes;
    // data_location = EXTERNAL (1); a `location` entry alone is recorded too, so a path check never misses one.
    const location = t.external.get("location");
    if (t.dataLocation !== 1 && location === undefined) return;
    const key = location ?? "";
    let entry = this.external.get(key);
    if (!entry) {
      if (this.external.size >= MAX_EXTERNAL_LOCATIONS) {
        throw new InvalidOnnxError(`more than ${MAX_EXTERNAL_LOCATIONS} external data files`, "limit");
      }
      entry = { location: key, tensors: 0, bytes: 0 };
      this.external.set(key, entry);
    }
    entry.tensors++;
    const length = Number(t.external.get("length"));
    entry.bytes = entry.bytes !== null && Number.isFinite(length) && length >= 0 ? entry.bytes + length : null;
  }

  private async valueInfo(end: number, depth: number): Promise<OnnxValueInfo> {
    const c = this.c;
    const info: OnnxValueInfo = { name: "", kind: "unknown", elemType: null, shape: null };
    await c.message(end, depth, async (field, wire) => {
      if (field === 1 && wire === Wire.LEN) info.name = await c.string(end, MAX_NAME);
      else if (field === 2 && wire === Wire.LEN) await this.type(await c.lengthEnd(end), depth + 1, info, true);
      else return false;
      return true;
    });
    return info;
  }

  /** TypeProto: tensor_type 1, sequence_type 4, map_type 5, sparse_tensor_type 8, optional_type 9. */
  private async type(end: number, depth: number, info: OnnxValueInfo, outer: boolean): Promise<void> {
    const c = this.c;
    await c.message(end, depth, async (field, wire) => {
      if (wire !== Wire.LEN) return false;
      const to = await c.lengthEnd(end);
      if (field === 1 || field === 8) {
        if (outer) info.kind = field === 1 ? "tensor" : "sparse-tensor";
        await this.tensorType(to, depth + 1, info);
      } else if (field === 4 || field === 9) {
        if (outer) info.kind = field === 4 ? "sequence" : "optional";
        // Sequence/Optional: elem_type (1) is another TypeProto; this is where nesting is unbounded.
        await c.message(to, depth + 1, async (f, w) => {
          if (f !== 1 || w !== Wire.LEN) return false;
          await this.type(await c.lengthEnd(to), depth + 2, info, false);
          return true;
        });
      } else if (field === 5) {
        if (outer) info.kind = "map";
        await c.message(to, depth + 1, async (f, w) => {
          if (f !== 2 || w !== Wire.LEN) return false;
          await this.type(await c.lengthEnd(to), depth + 2, info, false);
          return true;
        });
      } else c.pos = to;
      return true;
    });
  }

  /** TypeProto.Tensor: elem_type 1, shape 2 (TensorShapeProto: dim 1 → dim_value 1 / dim_param 2). */
  private async tensorType(end: number, depth: number, info: OnnxValueInfo): Promise<void> {
    const c = this.c;
    await c.message(end, depth, async (field, wire) => {
      if (field === 1 && wire === Wire.VARINT) info.elemType = onnxDataTypeName(await c.varint(end));
      else if (field === 2 && wire === Wire.LEN) {
        const shapeEnd = await c.lengthEnd(end);
        const shape: OnnxDim[] = [];
        await c.message(shapeEnd, depth + 1, async (f, w) => {
          if (f !== 1 || w !== Wire.LEN) return false;
          if (shape.length >= MAX_DIMS) throw new InvalidOnnxError(`shape with more than ${MAX_DIMS} dims`, "limit");
          shape.push(await this.dim(await c.lengthEnd(shapeEnd), depth + 2));
          return true;
        });
        info.shape = shape;
      } else return false;
      return true;
    });
  }

  private async dim(end: number, depth: number): Promise<OnnxDim> {
    const c = this.c;
    let d: OnnxDim = null;
    await c.message(end, depth, async (field, wire) => {
      if (field === 1 && wire === Wire.VARINT) d = await c.varint(end);
      else if (field === 2 && wire === Wire.LEN) d = await c.string(end, MAX_NAME);
      else return false;
      return true;
    });
    return d;
  }
}

/**
 * Reads what detection needs from an ONNX ModelProto: versions, opsets, graph inputs/outputs with shapes,
 * operator counts, initializer counts/types and external data references. Tensor payloads are skipped by
 * offset, never read; total bytes fetched and fields visited are capped.
 */
export async function readOnnxSummary(src: ByteSource, options: ReadOnnxSummaryOptions = {}): Promise<OnnxSummary> {
  const limits: ProtoLimits = {
    maxReadBytes: options.maxReadBytes ?? DEFAULT_LIMITS.maxReadBytes,
    maxFields: options.maxFields ?? DEFAULT_LIMITS.maxFields,
    maxDepth: options.maxDepth ?? DEFAULT_LIMITS.maxDepth,
  };
  if (src.size === 0) throw new InvalidOnnxError("empty file", "not-onnx");
  const c = new ProtoCursor(src, limits, options.signal);
  const w = new Walk(c);
  await w.model();
  // Protobuf accepts almost any bytes as unknown fields; a model must at least have a graph and an IR version.
  if (!w.sawGraph || w.irVersion === null) {
    throw new InvalidOnnxError(`not an ONNX model: no ${w.sawGraph ? "ir_version" : "graph"}`, "not-onnx");
  }
  const inputs = w.inputs.filter((i) => !w.initializerNames.has(i.name));
  return {
    irVersion: w.irVersion,
    producerName: w.producerName,
    producerVersion: w.producerVersion,
    opsets: w.opsets,
    metadata: Object.fromEntries(w.metadata),
    graphName: w.graphName,
    inputs,
    outputs: w.outputs,
    nodeCount: w.nodeCount,
    nodesWithoutOp: w.nodesWithoutOp,
    opTypes: Object.fromEntries(w.opTypes),
    initializerCount: w.initializerCount,
    sparseInitializerCount: w.sparseInitializerCount,
    initializerElements: w.initializerElements,
    initializerTypes: Object.fromEntries(w.initializerTypes),
    inlineDataBytes: w.inlineDataBytes,
    externalData: [...w.external.values()],
    bytesRead: c.bytesRead,
    reads: c.reads,
    fieldsVisited: c.fieldsVisited,
  };
}
