import { createHash, type Hash } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { lstat, open, rename, unlink, type FileHandle } from "node:fs/promises";
import { abortReason } from "../core/abortable.js";
import { HubError, hubErrorFromResponse, type HubRequestContext } from "../detection/hub/HubError.js";
import { DownloadError, HashMismatchError, UnsafePathError } from "./errors.js";
import { FileLock } from "./FileLock.js";

/** How the hub names a file's content: LFS files by sha256, plain git files by their git blob sha1. */
export interface BlobDigest {
  algorithm: "sha256" | "git-sha1";
  hex: string;
}

interface DownloadBlobOptions {
  /** `/resolve/<commit>/<file>`: the hub redirects LFS files to its CDN, and fetch follows. */
  url: string;
  size: number;
  digest: BlobDigest;
  /** Final place: written only by renaming a verified `.incomplete` file. */
  blobPath: string;
  accessToken?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Attempts after a lost connection or a 5xx; each resumes where the last one stopped. Default 3. */
  retries?: number;
  /** Delay before retry n (1-based); default 500 ms × n. */
  retryDelayMs?: (attempt: number) => number;
  /** For messages about a failed response. */
  context: HubRequestContext;
  /** Bytes already present when the download (re)starts, then each chunk as it is written. */
  onProgress?: (
    event: { kind: "start"; resumeFrom: number } | { kind: "data"; bytes: number } | { kind: "retry"; attempt: number; error: string } | { kind: "wait" },
  ) => void;
}

interface DownloadBlobResult {
  /** The blob was already in the store (this run or a concurrent one put it there). */
  reused: boolean;
  /** Bytes fetched over the network by this call. */
  fetchedBytes: number;
  /** Bytes taken from an earlier interrupted download. */
  resumedBytes: number;
}

function newHasher(digest: BlobDigest, size: number): Hash {
  if (digest.algorithm === "sha256") return createHash("sha256");
  // git's object id: sha1 over a `blob <size>\0` header, then the content.
  return createHash("sha1").update(`blob ${size}\0`);
}

async function isCompleteBlob(path: string, size: number): Promise<boolean> {
  const st = await lstat(path).catch(() => null);
  if (st?.isSymbolicLink()) throw new UnsafePathError(`refusing ${path}: a blob must be a file, not a symlink`);
  return st !== null && st.isFile() && st.size === size;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/**
 * Downloads one blob into the store: streamed to `<blob>.incomplete` (resumed with a Range request when an earlier
 * attempt left one), hashed while written, and renamed into place only when size and hash match the hub's. A hash
 * mismatch removes the partial file; an interruption (Ctrl-C, lost connection) keeps it for the next attempt. No
 * reader ever sees a partial blob under the final name. A lock file makes concurrent pulls of one blob fetch it once.
 */
export async function downloadBlob(options: DownloadBlobOptions): Promise<DownloadBlobResult> {
  const { blobPath, size, signal } = options;
  if (await isCompleteBlob(blobPath, size)) return { reused: true, fetchedBytes: 0, resumedBytes: 0 };
  const lock = await FileLock.acquire(`${blobPath}.lock`, { signal, onWait: () => options.onProgress?.({ kind: "wait" }) });
  try {
    // Whoever held the lock may have finished it.
    if (await isCompleteBlob(blobPath, size)) return { reused: true, fetchedBytes: 0, resumedBytes: 0 };
    return await downloadLocked(options);
  } finally {
    await lock.release();
  }
}

async function downloadLocked(options: DownloadBlobOptions): Promise<DownloadBlobResult> {
  const { blobPath, signal } = options;
  const partial = `${blobPath}.incomplete`;
  const retries = options.retries ?? 3;
  let fetchedBytes = 0;
  let resumedBytes = -1;
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await attemptDownload(options, partial);
      fetchedBytes += r.fetched;
      if (resumedBytes < 0) resumedBytes = r.resumedFrom;
      break;
    } catch (err) {
      if (err instanceof DownloadError) fetchedBytes += err.fetched;
      if (resumedBytes < 0 && err instanceof DownloadError && err.resumedFrom !== undefined) resumedBytes = err.resumedFrom;
      const retryable = !signal?.aborted && err instanceof DownloadError && err.retryable;
      if (!retryable || attempt >= retries) throw err;
      options.onProgress?.({ kind: "retry", attempt: attempt + 1, error: err.message });
      await sleep(options.retryDelayMs?.(attempt + 1) ?? 500 * (attempt + 1), signal);
    }
  }
  return { reused: false, fetchedBytes, resumedBytes: Math.max(0, resumedBytes) };
}

/** Opens the partial file for appending without following a symlink planted in its place. */
async function openPartial(path: string): Promise<FileHandle> {
  const st = await lstat(path).catch(() => null);
  if (st && !st.isFile()) throw new UnsafePathError(`refusing ${path}: not a regular file`);
  return open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o644);
}

async function hashExisting(path: string, hasher: Hash, length: number, signal?: AbortSignal): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, signal })) hasher.update(chunk as Buffer);
}

async function attemptDownload(options: DownloadBlobOptions, partial: string): Promise<{ fetched: number; resumedFrom: number }> {
  const { size, signal, digest } = options;
  const handle = await openPartial(partial);
  let fetched = 0;
  let offset = 0;
  try {
    offset = (await handle.stat()).size;
    if (offset > size) {
      // Longer than the file can be: not a prefix of it.
      await handle.truncate(0);
      offset = 0;
    }
    let hasher = newHasher(digest, size);
    await hashExisting(partial, hasher, offset, signal);
    options.onProgress?.({ kind: "start", resumeFrom: offset });
    if (offset < size) {
      const headers: Record<string, string> = { "Accept-Encoding": "identity" };
      if (offset > 0) headers.Range = `bytes=${offset}-`;
      if (options.accessToken) headers.Authorization = `Bearer ${options.accessToken}`;
      let res: Response;
      try {
        res = await (options.fetch ?? fetch)(options.url, { headers, signal, redirect: "follow" });
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        throw new DownloadError(`cannot reach ${options.context.hubUrl}: ${describeNetworkError(err)}`, { retryable: true, cause: err });
      }
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        if (!m || Number(m[1]) !== offset) {
          await res.body?.cancel().catch(() => undefined);
          throw new DownloadError(`${options.context.path}: the hub answered a resume from byte ${offset} with ${m ? `bytes ${m[1]}-${m[2]}` : "no Content-Range"}`);
        }
      } else if (res.status === 200) {
        // The server ignored the Range header: start over from the first byte.
        if (offset > 0) {
          await handle.truncate(0);
          offset = 0;
          hasher = newHasher(digest, size);
          options.onProgress?.({ kind: "start", resumeFrom: 0 });
        }
      } else if (!res.ok) {
        const error = hubErrorFromResponse(res, options.context);
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 500 || res.status === 429) throw new DownloadError(error.message, { retryable: true, cause: error });
        throw error;
      }
      try {
        for await (const chunk of res.body ?? []) {
          const bytes = chunk as Uint8Array;
          if (offset + fetched + bytes.byteLength > size) {
            throw new DownloadError(`${options.context.path}: the hub sent more than the ${size} bytes it listed`);
          }
          await handle.write(bytes);
          hasher.update(bytes);
          fetched += bytes.byteLength;
          options.onProgress?.({ kind: "data", bytes: bytes.byteLength });
        }
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        if (err instanceof DownloadError) throw err;
        throw new DownloadError(
          `connection to ${options.context.hubUrl} lost after ${offset + fetched} of ${size} bytes of ${options.context.path}: ${describeNetworkError(err)}`,
          {
            retryable: true,
            cause: err,
          },
        );
      }
      if (offset + fetched < size) {
        throw new DownloadError(`connection to ${options.context.hubUrl} closed after ${offset + fetched} of ${size} bytes of ${options.context.path}`, {
          retryable: true,
        });
      }
    }
    const got = hasher.digest("hex");
    if (got !== digest.hex) {
      await handle.close();
      await unlink(partial).catch(() => undefined);
      throw new HashMismatchError(options.context.path ?? options.blobPath, `${digest.algorithm} ${digest.hex}`, got);
    }
    await handle.sync();
    await handle.close();
    await rename(partial, options.blobPath);
    return { fetched, resumedFrom: offset };
  } catch (err) {
    await handle.close().catch(() => undefined);
    if (err instanceof DownloadError) {
      err.fetched = fetched;
      err.resumedFrom = offset;
    }
    throw err instanceof HubError || err instanceof DownloadError || err instanceof HashMismatchError || err instanceof UnsafePathError ? err : wrapUnknown(err, signal);
  }
}

function wrapUnknown(err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return abortReason(signal);
  return err;
}

function describeNetworkError(err: unknown): string {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const rec = e as { code?: unknown; cause?: unknown; message?: unknown };
    if (typeof rec.code === "string") return rec.code;
    if (!rec.cause && typeof rec.message === "string") return rec.message;
    e = rec.cause;
  }
  return String(err);
}
