import { open, type FileHandle } from "node:fs/promises";

/** Random-access bytes: a local file now, an HTTP range reader later, read the same way. */
export interface ByteSource {
  /** Reads up to `length` bytes at `offset`; fewer only at end of data. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  readonly size: number;
  close(): Promise<void>;
}

export async function openFileByteSource(path: string): Promise<ByteSource> {
  const handle: FileHandle = await open(path, "r");
  const { size } = await handle.stat();
  return {
    size,
    async read(offset, length, signal) {
      signal?.throwIfAborted();
      const len = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.allocUnsafe(len);
      let done = 0;
      while (done < len) {
        const { bytesRead } = await handle.read(buf, done, len - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    },
    close: () => handle.close(),
  };
}
