import { SAFETENSORS_DTYPE_BITS, type SafetensorsDtype } from "../../../src/detection/safetensors/readSafetensorsHeader.js";

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** Bytes taken by a tensor's data (sub-byte dtypes round up, as a writer must pad them). */
function tensorBytes(t: TensorSpec): number {
  return Math.ceil((t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BITS[t.dtype]) / 8);
}

/** The header object a reference writer would produce: tensors back to back in the given order. */
export function safetensorsHeaderObject(tensors: TensorSpec[], metadata?: Record<string, string>): { header: object; dataBytes: number } {
  const entries: Array<[string, unknown]> = metadata ? [["__metadata__", metadata]] : [];
  let offset = 0;
  for (const t of tensors) {
    const n = tensorBytes(t);
    entries.push([t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] }]);
    offset += n;
  }
  // fromEntries, not assignment: a tensor called `__proto__` must stay a plain key.
  return { header: Object.fromEntries(entries), dataBytes: offset };
}

/**
 * A file from any header text: the 8-byte little-endian length (or `lengthPrefix`), the header padded with spaces
 * to 8 bytes like the reference writer (unless `pad: false`), then `dataBytes` bytes of tensor data.
 */
export function encodeSafetensors(header: string | Uint8Array, dataBytes: number, options: { lengthPrefix?: bigint; pad?: boolean; fill?: number } = {}): Uint8Array {
  let json = typeof header === "string" ? new TextEncoder().encode(header) : header;
  if (options.pad !== false && json.length % 8 !== 0) {
    const padded = new Uint8Array(json.length + (8 - (json.length % 8))).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + dataBytes).fill(options.fill ?? 0);
  new DataView(out.buffer).setBigUint64(0, options.lengthPrefix ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

/** A valid safetensors file (zero-filled data). */
export function buildSafetensors(tensors: TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const { header, dataBytes } = safetensorsHeaderObject(tensors, metadata);
  return encodeSafetensors(JSON.stringify(header), dataBytes);
}
