import { MODEL_ID_PATTERN } from "../config/configSchema.js";
import { quantFromFileName } from "./selectGgufFiles.js";

/**
 * The id a model from the hub cache gets, the same whether it was pulled here or by Python tools:
 * `owner--name` (the cache folder's spelling; `--` never occurs in hub names, so it is unambiguous), plus
 * `:QUANT` (or `:file-stem`) for one GGUF model among several in the repo. Null when that is not a valid id.
 */
export function storeModelId(repo: string, ggufFile: string | null): string | null {
  const base = repo.split("/").join("--");
  let id = base;
  if (ggufFile !== null) {
    const quant = quantFromFileName(ggufFile);
    const stem = (ggufFile.split("/").pop() ?? ggufFile).replace(/(-\d{5}-of-\d{5})?\.gguf$/i, "");
    id = `${base}:${quant ?? stem}`;
  }
  return MODEL_ID_PATTERN.test(id) ? id : null;
}
