import type { ByteSource } from "../gguf/ByteSource.js";
import { InvalidLiteRtError } from "./InvalidLiteRtError.js";

export interface ZipEntry {
  name: string;
  /** 0 = stored (what MediaPipe writes, so models can be mapped in place), 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

interface ZipDirectory {
  entries: ZipEntry[];
  zip64: boolean;
  bytesRead: number;
}

interface ReadZipDirectoryOptions {
  signal?: AbortSignal;
  maxEntries?: number;
  maxDirectoryBytes?: number;
  /** Refuse archives whose entries claim more than this many bytes once extracted (default 256 GiB). */
  maxTotalBytes?: number;
  /** Refuse an entry over 1 MiB that would inflate more than this many times its stored size (default 100). */
  maxRatio?: number;
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** The EOCD record (22 bytes) plus the longest comment it may carry. */
const TAIL = 22 + 0xffff;
/** Small entries compress well legitimately (a page of zeros); the ratio rule is for the big ones. */
const RATIO_MIN_SIZE = 1 << 20;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

async function readExact(src: ByteSource, offset: number, length: number, what: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (offset < 0 || offset + length > src.size) throw new InvalidLiteRtError(`ZIP ${what} at ${offset} runs past the end of the file`);
  const b = await src.read(offset, length, signal);
  if (b.length < length) throw new InvalidLiteRtError(`ZIP ${what} at ${offset} is truncated`);
  return b;
}

/** The Zip64 extra field (id 1) replaces, in order, whichever of size, compressed size and offset are 0xFFFFFFFF. */
function applyZip64Extra(extra: Uint8Array, e: ZipEntry): void {
  const v = dv(extra);
  for (let p = 0; p + 4 <= extra.length;) {
    const id = v.getUint16(p, true);
    const len = v.getUint16(p + 2, true);
    if (p + 4 + len > extra.length) throw new InvalidLiteRtError(`ZIP extra field of ${e.name} overruns its entry`);
    if (id === 1) {
      let q = p + 4;
      const next = (): number => {
        if (q + 8 > p + 4 + len) throw new InvalidLiteRtError(`ZIP64 extra field of ${e.name} is too short`);
        const n = Number(v.getBigUint64(q, true));
        q += 8;
        return n;
      };
      if (e.size === 0xffffffff) e.size = next();
      if (e.compressedSize === 0xffffffff) e.compressedSize = next();
      if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = next();
      return;
    }
    p += 4 + len;
  }
}

/** Sizes that cannot be honest: a stored entry whose two sizes differ, or an entry inflating like a ZIP bomb. */
function checkEntrySize(e: ZipEntry, maxRatio: number): void {
  if (e.method === 0 && e.size !== e.compressedSize) {
    throw new InvalidLiteRtError(`ZIP entry ${e.name} is stored but claims ${e.compressedSize} bytes stored and ${e.size} extracted`);
  }
  if (e.method !== 0 && e.size > RATIO_MIN_SIZE && e.size > maxRatio * Math.max(1, e.compressedSize)) {
    throw new InvalidLiteRtError(`ZIP entry ${e.name} would inflate ${e.compressedSize} bytes into ${e.size} (more than ${maxRatio}x): a ZIP bomb`);
  }
}

/**
 * Lists a ZIP's entries from its central directory: one read of the last 64 KiB to find the end record, one read
 * of the directory. Entry data is never read, nor inflated. Refuses what only a ZIP bomb or a corrupt archive holds:
 * overlapping entries, ratios past `maxRatio`, more than `maxEntries` entries or `maxTotalBytes` extracted. Zip64
 * archives are supported; multi-disk ones are not.
 */
export async function readZipDirectory(src: ByteSource, options: ReadZipDirectoryOptions = {}): Promise<ZipDirectory> {
  const { signal, maxEntries = 10_000, maxDirectoryBytes = 4 << 20, maxTotalBytes = 256 * 2 ** 30, maxRatio = 100 } = options;
  if (src.size < 22) throw new InvalidLiteRtError("file too small to be a ZIP archive");
  const tailStart = Math.max(0, src.size - TAIL);
  const tail = await readExact(src, tailStart, src.size - tailStart, "end record", signal);
  let bytesRead = tail.length;
  const t = dv(tail);
  // Scan back for the signature; prefer a record whose comment ends exactly at the end of the file.
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (t.getUint32(i, true) !== EOCD) continue;
    const end = i + 22 + t.getUint16(i + 20, true);
    if (end === tail.length) {
      at = i;
      break;
    }
    if (at < 0 && end <= tail.length) at = i;
  }
  if (at < 0) throw new InvalidLiteRtError("no ZIP end-of-central-directory record in the last 64 KiB");
  const eocdOffset = tailStart + at;
  if (t.getUint16(at + 4, true) !== 0 || t.getUint16(at + 6, true) !== 0) throw new InvalidLiteRtError("multi-disk ZIP archives are not supported");
  let count = t.getUint16(at + 10, true);
  let cdSize = t.getUint32(at + 12, true);
  let cdOffset = t.getUint32(at + 16, true);
  let limit = eocdOffset;
  let zip64 = false;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locAt = at - 20;
    if (locAt < 0 || t.getUint32(locAt, true) !== EOCD64_LOCATOR) throw new InvalidLiteRtError("ZIP64 archive without its locator");
    const recOffset = Number(t.getBigUint64(locAt + 8, true));
    if (recOffset + 56 > tailStart + locAt) throw new InvalidLiteRtError("ZIP64 end record offset is out of range");
    const rec = await readExact(src, recOffset, 56, "ZIP64 end record", signal);
    bytesRead += rec.length;
    const r = dv(rec);
    if (r.getUint32(0, true) !== EOCD64) throw new InvalidLiteRtError("bad ZIP64 end record signature");
    count = Number(r.getBigUint64(32, true));
    cdSize = Number(r.getBigUint64(40, true));
    cdOffset = Number(r.getBigUint64(48, true));
    limit = recOffset;
    zip64 = true;
  }
  if (count > maxEntries) throw new InvalidLiteRtError(`ZIP lists ${count} entries, more than ${maxEntries}`);
  if (cdSize > maxDirectoryBytes) throw new InvalidLiteRtError(`ZIP central directory of ${cdSize} bytes exceeds ${maxDirectoryBytes}`);
  if (cdOffset + cdSize > limit) throw new InvalidLiteRtError("ZIP central directory overlaps its end record or the end of the file");
  if (cdSize < count * 46) throw new InvalidLiteRtError(`ZIP central directory of ${cdSize} bytes cannot hold ${count} entries`);

  // The directory usually sits in the tail we already have.
  const cd =
    cdOffset >= tailStart ? tail.subarray(cdOffset - tailStart, cdOffset - tailStart + cdSize) : await readExact(src, cdOffset, cdSize, "central directory", signal);
  if (cdOffset < tailStart) bytesRead += cd.length;
  const c = dv(cd);
  const decoder = new TextDecoder("utf-8", { fatal: false });
  const entries: ZipEntry[] = [];
  const localSpans: [number, number, string][] = [];
  let total = 0;
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || c.getUint32(p, true) !== CENTRAL) throw new InvalidLiteRtError(`ZIP central directory entry ${i} is corrupt`);
    const nameLen = c.getUint16(p + 28, true);
    const extraLen = c.getUint16(p + 30, true);
    const commentLen = c.getUint16(p + 32, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cd.length) throw new InvalidLiteRtError(`ZIP central directory entry ${i} overruns the directory`);
    const e: ZipEntry = {
      name: decoder.decode(cd.subarray(p + 46, p + 46 + nameLen)),
      method: c.getUint16(p + 10, true),
      compressedSize: c.getUint32(p + 20, true),
      size: c.getUint32(p + 24, true),
      localHeaderOffset: c.getUint32(p + 42, true),
    };
    applyZip64Extra(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), e);
    if (e.localHeaderOffset + 30 + e.compressedSize > cdOffset) {
      throw new InvalidLiteRtError(`ZIP entry ${e.name} lies outside the archive data`);
    }
    checkEntrySize(e, maxRatio);
    entries.push(e);
    localSpans.push([e.localHeaderOffset, e.localHeaderOffset + 30 + nameLen + e.compressedSize, e.name]);
    total += e.size;
    if (total > maxTotalBytes) throw new InvalidLiteRtError(`ZIP entries add up to more than ${maxTotalBytes} bytes extracted`);
    p = next;
  }
  // Entries sharing bytes are how non-recursive ZIP bombs multiply a small file; no archiver writes them.
  localSpans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < localSpans.length; i++) {
    if (localSpans[i]![0] < localSpans[i - 1]![1]) throw new InvalidLiteRtError(`ZIP entries ${localSpans[i - 1]![2]} and ${localSpans[i]![2]} overlap`);
  }
  return { entries, zip64, bytesRead };
}

/** Where a stored entry's data lies (through its local header, checked against the file); null for a compressed one. */
export async function storedEntryData(src: ByteSource, e: ZipEntry, signal?: AbortSignal): Promise<{ offset: number; size: number } | null> {
  if (e.method !== 0) return null;
  const h = await readExact(src, e.localHeaderOffset, 30, `local header of ${e.name}`, signal);
  const v = dv(h);
  if (v.getUint32(0, true) !== LOCAL) throw new InvalidLiteRtError(`bad ZIP local header for ${e.name}`);
  const offset = e.localHeaderOffset + 30 + v.getUint16(26, true) + v.getUint16(28, true);
  if (offset + e.size > src.size) throw new InvalidLiteRtError(`ZIP entry ${e.name} runs past the end of the file`);
  return { offset, size: e.size };
}

/**
 * The first bytes of a stored entry's data (through its local header), or null for a compressed entry, whose
 * bytes would need inflating.
 */
export async function readStoredEntryHead(src: ByteSource, e: ZipEntry, length: number, signal?: AbortSignal): Promise<Uint8Array | null> {
  const data = await storedEntryData(src, e, signal);
  if (!data) return null;
  const n = Math.min(length, e.size);
  return n === 0 ? new Uint8Array(0) : readExact(src, data.offset, n, `data of ${e.name}`, signal);
}
