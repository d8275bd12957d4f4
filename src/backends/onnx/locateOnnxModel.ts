import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { onnxDetails } from "../../core/detectionSchema.js";
import type { ModelDescriptor } from "../../core/types.js";
import type { DecoderNames } from "./describeDecoderGraph.js";

export interface OnnxModelLocation {
  /** The model folder: every file the engine opens must be inside it. */
  root: string;
  /** The graph, relative to `root` (`/`-separated). */
  graph: string;
  /** Where config.json and the tokenizer files are. */
  configDir: string;
  /** Input/output name patterns from genai_config.json. */
  names: DecoderNames;
  layout: string;
}

function obj(v: unknown): Record<string, unknown> | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Which files serve a detected ONNX model: the graph detection chose (an onnxruntime-genai folder's decoder, an
 * optimum `model.onnx` / `decoder_model_merged.onnx`, a transformers.js `onnx/` graph, or a single file) and the
 * folder with its tokenizer (beside the graph, one level up from `onnx/`, or the root).
 */
export async function locateOnnxModel(descriptor: ModelDescriptor): Promise<OnnxModelLocation> {
  const details = onnxDetails(descriptor.detection);
  const layout = details?.layout ?? "single-file";
  const st = await stat(descriptor.path);
  if (st.isFile()) {
    const root = dirname(descriptor.path);
    return { root, graph: basename(descriptor.path), configDir: root, names: {}, layout };
  }
  const root = descriptor.path;
  const graph = details?.primaryFile;
  if (graph === undefined) throw new Error("detection found no ONNX graph in this folder");
  const names: DecoderNames = {};
  const genaiPath = str(details?.genaiConfig?.path);
  if (genaiPath) {
    // Detection listed this file inside the folder; it names the decoder's cache inputs and outputs.
    const config = obj(JSON.parse(await readFile(join(root, ...genaiPath.split("/")), "utf8")));
    const decoder = obj(obj(config?.["model"])?.["decoder"]);
    const inputs = obj(decoder?.["inputs"]);
    const outputs = obj(decoder?.["outputs"]);
    names.pastKey = str(inputs?.["past_key_names"]);
    names.pastValue = str(inputs?.["past_value_names"]);
    names.presentKey = str(outputs?.["present_key_names"]);
    names.presentValue = str(outputs?.["present_value_names"]);
  }
  const graphDir = posix.dirname(graph) === "." ? "" : posix.dirname(graph);
  const candidates = [graphDir];
  if (posix.basename(graphDir) === "onnx") candidates.push(posix.dirname(graphDir) === "." ? "" : posix.dirname(graphDir));
  candidates.push("");
  let configDir = join(root, graphDir);
  for (const c of candidates) {
    if (await exists(join(root, c, "tokenizer.json"))) {
      configDir = join(root, c);
      break;
    }
  }
  return { root, graph, configDir, names, layout };
}
