import { onnxDetails, type Detection } from "../core/detectionSchema.js";
import type { ModelFileEntry } from "../detection/ModelFileSystem.js";
import { isProjectorFile } from "../detection/groupGgufFiles.js";
import { ONNX_EXTERNAL_DATA } from "../detection/onnx/onnxFileNames.js";
import type { BlobDigest } from "./downloadBlob.js";
import { DownloadError, InvalidPullSourceError, UnsafePathError } from "./errors.js";
import { isHexDigest, isSafeRepoPath } from "./isSafeRepoPath.js";
import { selectGgufFiles } from "./selectGgufFiles.js";

/** A file as the hub's tree API lists it (the fields of @huggingface/hub's ListFileEntry that a pull needs). */
export interface HubListedFile {
  path: string;
  size: number;
  /** Git object id (sha1 of the file, or of its LFS pointer). */
  oid?: string;
  lfs?: { oid: string; size: number };
}

export interface PlannedFile {
  path: string;
  size: number;
  /** The blob's name in the cache: the LFS sha256, or the git sha1 for plain files (as huggingface_hub names them). */
  etag: string;
  digest: BlobDigest;
}

interface PullPlan {
  format: string;
  files: PlannedFile[];
  /** The file an engine opens (a GGUF's first part), relative to the snapshot; null: the snapshot folder itself. */
  mainFile: string | null;
  quant: string | null;
}

/** Files a model never needs: model cards, pictures. */
const NOT_NEEDED = /\.(md|png|jpe?g|gif|webp|svg|pdf)$/i;
const HF_WEIGHTS = /\.(safetensors|onnx)$|(^|\/)pytorch_model[^/]*\.bin$/i;

function toPlanned(entry: HubListedFile): PlannedFile {
  if (entry.lfs) {
    if (!/^[0-9a-f]{64}$/.test(entry.lfs.oid))
      throw new UnsafePathError(`the hub listed '${entry.lfs.oid.slice(0, 80)}' as the sha256 of ${entry.path}; refusing it as a file name`);
    return { path: entry.path, size: entry.lfs.size, etag: entry.lfs.oid, digest: { algorithm: "sha256", hex: entry.lfs.oid } };
  }
  if (!entry.oid) throw new DownloadError(`the hub listed no hash for ${entry.path}; refusing to store content that cannot be verified`);
  if (!isHexDigest(entry.oid) || entry.oid.length !== 40)
    throw new UnsafePathError(`the hub listed '${entry.oid.slice(0, 80)}' as the git id of ${entry.path}; refusing it as a file name`);
  return { path: entry.path, size: entry.size, etag: entry.oid, digest: { algorithm: "git-sha1", hex: entry.oid } };
}

/**
 * Decides which files of a repo to fetch. GGUF repos: one model file (and its split parts and projector) by the
 * named file, the named quantisation or the preference order. SafeTensors/ONNX repos: what detection says the model
 * is made of (config, tokenizer, one weights format), without other formats, other ONNX precisions or model cards.
 * Any listed name that could escape the snapshot folder refuses the whole repo.
 */
export async function planPull(options: {
  listing: HubListedFile[];
  /** `:file-or-quant` from the source, or null. */
  wanted: string | null;
  repoLabel: string;
  /** Detection of the repo at the pinned commit (headers only), for non-GGUF repos. */
  detect: () => Promise<Detection[]>;
}): Promise<PullPlan> {
  const { wanted, repoLabel } = options;
  for (const f of options.listing) {
    if (!isSafeRepoPath(f.path)) {
      throw new UnsafePathError(
        `${repoLabel}: the hub listed a file named '${f.path.slice(0, 200)}', which would land outside the model folder; refusing to pull from this repo`,
      );
    }
  }
  const listing = options.listing.filter((f) => !f.path.split("/").some((seg) => seg.startsWith(".")));
  const byPath = new Map(listing.map((f) => [f.path, f]));
  const entries: ModelFileEntry[] = listing.map((f) => ({ path: f.path, size: f.lfs?.size ?? f.size }));
  const planned = (paths: string[]) => paths.map((p) => toPlanned(byPath.get(p)!));

  const hasGguf = entries.some((e) => /\.gguf$/i.test(e.path) && !isProjectorFile(e.path));
  const hasHfWeights = entries.some((e) => HF_WEIGHTS.test(e.path));
  const exact = wanted !== null ? byPath.get(wanted) : undefined;
  if (exact && !/\.gguf$/i.test(exact.path)) {
    return { format: "file", files: planned([exact.path]), mainFile: exact.path, quant: null };
  }
  if (wanted !== null || (hasGguf && !hasHfWeights)) {
    if (!hasGguf) throw new InvalidPullSourceError(`${repoLabel} has no file '${wanted}'`);
    const choice = selectGgufFiles(entries, wanted, repoLabel);
    return { format: "gguf", files: planned(choice.files.map((f) => f.path)), mainFile: choice.group.main.path, quant: choice.quant };
  }
  const detections = await options.detect();
  const d = detections[0];
  if (!d || d.format === "unknown") throw new InvalidPullSourceError(`${repoLabel}: no model found (${d?.reason ?? "empty repo"})`);
  let files = d.files.filter((f) => byPath.has(f.path) && !(f.role === "other" && NOT_NEEDED.test(f.path)));
  const onnx = onnxDetails(d);
  if (onnx) {
    // One precision: the primary graph and its own external data, not the other variants.
    const variants = new Set((onnx.variants ?? []).map((v) => v.path));
    const ownData = new Set((onnx.externalData ?? []).flatMap((e) => (e.path ? [e.path] : [])));
    files = files.filter((f) => !variants.has(f.path) && !(ONNX_EXTERNAL_DATA.test(f.path) && !ownData.has(f.path)) && !/\.gguf$/i.test(f.path));
  }
  if (files.length === 0) throw new InvalidPullSourceError(`${repoLabel}: detection found no files to fetch`);
  return { format: d.format, files: planned(files.map((f) => f.path)), mainFile: null, quant: d.quantization };
}
