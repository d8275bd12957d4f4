import { realpath } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { hubCacheRepoRoot } from "../../detection/ModelFileSystem.js";
import { resolveExternalLocation } from "../../detection/onnx/onnxFileNames.js";

/** A graph names external data that would make ONNX Runtime read a file outside the model's folder. */
export class UnsafeExternalDataError extends Error {
  constructor(
    readonly location: string,
    readonly why: string,
  ) {
    super(`external data '${location}' is refused: ${why}`);
    this.name = "UnsafeExternalDataError";
  }
}

export class MissingExternalDataError extends Error {
  constructor(readonly location: string) {
    super(`external data '${location}' is missing`);
    this.name = "MissingExternalDataError";
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

/**
 * Checks, before ONNX Runtime opens anything, that the graph and every external-data file it names stay inside the
 * model folder `root`: no absolute paths, no `..` (checked on the text of the location), and no symlink whose target
 * lies elsewhere (checked on the resolved path; a Hugging Face cache snapshot may link into its own repo's blobs).
 * Returns the real paths of the data files.
 *
 * `graph` is the graph's path relative to `root`, `/`-separated.
 */
export async function resolveExternalData(root: string, graph: string, locations: readonly string[]): Promise<string[]> {
  const realRoot = await realpath(root);
  const allowed = hubCacheRepoRoot(realRoot);
  const realGraph = await realpath(join(root, graph));
  if (!isInside(allowed, realGraph)) throw new UnsafeExternalDataError(graph, "the graph file is a link to a file outside the model folder");
  const out: string[] = [];
  for (const location of locations) {
    const where = resolveExternalLocation(graph, location);
    if (!where.safe) throw new UnsafeExternalDataError(location, where.why);
    let real: string;
    try {
      real = await realpath(join(root, ...where.path.split("/")));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new MissingExternalDataError(location);
      throw err;
    }
    if (!isInside(allowed, real)) throw new UnsafeExternalDataError(location, "it is a link to a file outside the model folder");
    out.push(real);
  }
  return out;
}
