import type { ByteSource } from "../../../src/detection/gguf/ByteSource.js";

interface RecordingByteSource extends ByteSource {
  /** Every read requested, as [offset, length]. */
  reads: Array<[number, number]>;
}

/**
 * Bytes in memory, read like a file. A request that reaches past the end (or is not a plain non-negative integer
 * range) throws a plain Error, which a test sees as "the reader asked for more than the file".
 */
export function memoryByteSource(bytes: Uint8Array): RecordingByteSource {
  const reads: Array<[number, number]> = [];
  return {
    size: bytes.length,
    reads,
    async read(offset, length, signal) {
      signal?.throwIfAborted();
      reads.push([offset, length]);
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new Error(`read(${offset}, ${length}) outside a ${bytes.length}-byte file`);
      }
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}
