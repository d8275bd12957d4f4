import { listFiles } from "@huggingface/hub";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { abortReason } from "../core/abortable.js";
import { detectSource } from "../detection/detectSource.js";
import { HubError, hubErrorFromResponse, type HubRequestContext } from "../detection/hub/HubError.js";
import { HubModelFileSystem } from "../detection/hub/HubModelFileSystem.js";
import { parseHubSource } from "../detection/hub/parseHubSource.js";
import { downloadBlob } from "./downloadBlob.js";
import { DownloadError, GatedRepoError, InvalidPullSourceError, StoreError, UnsafePathError } from "./errors.js";
import { HubCacheLayout } from "./HubCacheLayout.js";
import { planPull, type HubListedFile, type PlannedFile } from "./planPull.js";
import { storeModelId } from "./storeModelId.js";

const COMMIT = /^[0-9a-f]{40}$/;
const METADATA_TIMEOUT_MS = 60_000;

interface PullModelOptions {
  /** `owner/name[@revision][:file-or-quant]`. */
  source: string;
  /** The hub cache folder (resolveStoreDir). */
  storeDir: string;
  /** Default https://huggingface.co (HF_ENDPOINT). */
  hubUrl?: string;
  /** HF_TOKEN or the config's token file; only ever sent as a Bearer header. */
  accessToken?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Resumed attempts per file after a lost connection; default 3. */
  retries?: number;
  retryDelayMs?: (attempt: number) => number;
  onEvent?: (event: PullEvent) => void;
}

export type PullEvent =
  | {
      type: "resolved";
      repo: string;
      commit: string;
      format: string;
      quant: string | null;
      files: { path: string; size: number; present: boolean }[];
      totalBytes: number;
    }
  | { type: "file-start"; path: string; size: number; resumeFrom: number }
  | { type: "progress"; path: string; bytes: number }
  | { type: "retry"; path: string; attempt: number; error: string }
  | { type: "waiting"; path: string }
  | { type: "file-done"; path: string; reused: boolean }
  | { type: "done"; result: PullResult };

export interface PullResult {
  source: string;
  repo: string;
  revision: string;
  commit: string;
  /** The id the model is listed and served under. */
  id: string | null;
  format: string;
  quant: string | null;
  snapshotDir: string;
  /** What an engine opens: the GGUF file, or the snapshot folder. */
  modelPath: string;
  files: { path: string; size: number; reused: boolean }[];
  totalBytes: number;
  /** Fetched over the network by this pull. */
  fetchedBytes: number;
  /** Taken from an interrupted earlier download. */
  resumedBytes: number;
  seconds: number;
}

/** Turns hub failures into errors that say what to do; the user's own abort stays an abort. */
function toPullError(err: unknown, ctx: HubRequestContext, signal?: AbortSignal): unknown {
  if (signal?.aborted) return abortReason(signal);
  if (err instanceof StoreError) return err;
  if (err instanceof HubError) {
    if (err.kind === "unauthorized" || err.status === 401 || err.status === 403) return new GatedRepoError(ctx.repo, ctx.hubUrl, ctx.tokenSent);
    if (err.kind === "invalid" || err.kind === "not-found") return new InvalidPullSourceError(err.message);
    return new DownloadError(err.message, { retryable: err.kind === "unreachable", cause: err });
  }
  return err;
}

function resolveUrl(hubUrl: string, repo: string, commit: string, path: string): string {
  return `${hubUrl}/${repo}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Pulls a model from a Hugging Face hub into the hub cache: pins the revision to a commit, plans the files
 * (planPull), downloads each blob with resume and hash verification (downloadBlob), then links the snapshot and
 * writes the ref. A file already in the cache is not fetched again; an interrupted pull resumes on the next run.
 */
export async function pullModel(options: PullModelOptions): Promise<PullResult> {
  const started = Date.now();
  const { signal, onEvent } = options;
  const parsed = parseHubSource(options.source);
  if (!parsed) {
    throw new InvalidPullSourceError(`'${options.source.slice(0, 200)}' is not a Hugging Face model: use owner/name[@revision][:file-or-quant]`);
  }
  const accessToken = options.accessToken || undefined;
  let fs: HubModelFileSystem;
  try {
    fs = new HubModelFileSystem({ repo: parsed.repo, revision: parsed.revision, hubUrl: options.hubUrl, accessToken, fetch: options.fetch });
  } catch (err) {
    throw new InvalidPullSourceError((err as Error).message);
  }
  const ctx: HubRequestContext = { hubUrl: fs.hubUrl, repo: parsed.repo, revision: parsed.revision, tokenSent: accessToken !== undefined };
  const fetchImpl = options.fetch ?? fetch;
  const metadataFetch: typeof fetch = async (input, init) => {
    const timeout = AbortSignal.timeout(METADATA_TIMEOUT_MS);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetchImpl(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, combined]) : combined });
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      throw new HubError("unreachable", `cannot reach ${fs.hubUrl}${timeout.aborted ? ": no answer within 60 s" : ""}`, { cause: err });
    }
    if (!res.ok) {
      const error = hubErrorFromResponse(res, ctx);
      await res.body?.cancel().catch(() => undefined);
      throw error;
    }
    return res;
  };

  let commit: string;
  let listing: HubListedFile[] = [];
  try {
    commit = await fs.resolveCommit(signal);
    if (!COMMIT.test(commit)) {
      throw new UnsafePathError(`${fs.hubUrl} reported '${commit.slice(0, 80)}' as the commit of ${parsed.repo}@${parsed.revision}; a pull needs a 40-digit commit sha`);
    }
    for await (const e of listFiles({ repo: parsed.repo, revision: commit, recursive: true, hubUrl: fs.hubUrl, accessToken, fetch: metadataFetch })) {
      if (e.type === "file") listing.push({ path: e.path, size: e.size, oid: e.oid, lfs: e.lfs });
    }
  } catch (err) {
    throw toPullError(err, ctx, signal);
  }
  const repoLabel = `${parsed.repo}@${commit.slice(0, 12)}`;
  const plan = await planPull({
    listing,
    wanted: parsed.file,
    repoLabel,
    detect: () => detectSource(`${parsed.repo}@${commit}`, { signal, openRemote: async () => ({ fs, file: null }) }),
  }).catch((err: unknown) => {
    throw toPullError(err, ctx, signal);
  });
  // eslint-disable-next-line no-useless-assignment -- drops the (possibly large) listing before the download, which can take hours
  listing = [];

  const layout = await HubCacheLayout.open(options.storeDir);
  const snapshotDir = layout.snapshotDir(parsed.repo, commit);
  await layout.ensureDir(join(layout.repoDir(parsed.repo), "blobs"));
  await layout.ensureDir(snapshotDir);
  const present = await Promise.all(
    plan.files.map(async (f) => {
      const st = await lstat(layout.blobPath(parsed.repo, f.etag)).catch(() => null);
      return st?.isFile() === true && st.size === f.size;
    }),
  );
  const totalBytes = plan.files.reduce((n, f) => n + f.size, 0);
  onEvent?.({
    type: "resolved",
    repo: parsed.repo,
    commit,
    format: plan.format,
    quant: plan.quant,
    files: plan.files.map((f, i) => ({ path: f.path, size: f.size, present: present[i]! })),
    totalBytes,
  });

  const files: PullResult["files"] = [];
  let fetchedBytes = 0;
  let resumedBytes = 0;
  for (const file of plan.files) {
    const r = await downloadOne(file);
    files.push({ path: file.path, size: file.size, reused: r.reused });
    fetchedBytes += r.fetchedBytes;
    resumedBytes += r.resumedBytes;
    await layout.linkSnapshot(parsed.repo, commit, file.path, file.etag);
    onEvent?.({ type: "file-done", path: file.path, reused: r.reused });
  }
  if (parsed.revision !== commit) await layout.writeRef(parsed.repo, parsed.revision, commit);

  const result: PullResult = {
    source: options.source,
    repo: parsed.repo,
    revision: parsed.revision,
    commit,
    id: storeModelId(parsed.repo, plan.format === "gguf" ? plan.mainFile : null),
    format: plan.format,
    quant: plan.quant,
    snapshotDir,
    modelPath: plan.mainFile !== null ? join(snapshotDir, plan.mainFile) : snapshotDir,
    files,
    totalBytes,
    fetchedBytes,
    resumedBytes,
    seconds: (Date.now() - started) / 1000,
  };
  onEvent?.({ type: "done", result });
  return result;

  async function downloadOne(file: PlannedFile) {
    try {
      return await downloadBlob({
        url: resolveUrl(fs.hubUrl, parsed!.repo, commit, file.path),
        size: file.size,
        digest: file.digest,
        blobPath: layout.blobPath(parsed!.repo, file.etag),
        accessToken,
        fetch: options.fetch,
        signal,
        retries: options.retries,
        retryDelayMs: options.retryDelayMs,
        context: { ...ctx, path: file.path },
        onProgress: (e) => {
          if (e.kind === "start") onEvent?.({ type: "file-start", path: file.path, size: file.size, resumeFrom: e.resumeFrom });
          else if (e.kind === "data") onEvent?.({ type: "progress", path: file.path, bytes: e.bytes });
          else if (e.kind === "retry") onEvent?.({ type: "retry", path: file.path, attempt: e.attempt, error: e.error });
          else onEvent?.({ type: "waiting", path: file.path });
        },
      });
    } catch (err) {
      throw toPullError(err, { ...ctx, path: file.path }, signal);
    }
  }
}
