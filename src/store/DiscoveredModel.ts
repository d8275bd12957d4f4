import type { ModelDescriptor } from "../core/types.js";

/** Where a listed model comes from; only `store` models are ever deleted by `tabagent rm`. */
export type ModelOrigin = "config" | "models-dir" | "store" | "lmstudio" | "ollama";

export interface DiscoveredModel {
  id: string;
  origin: ModelOrigin;
  /** `owner/name@commit` (store), `publisher/repo` (LM Studio), `name:tag` (Ollama). */
  label: string;
  descriptor: Omit<ModelDescriptor, "id">;
  /** Identifies the weights across sources (`sha256:<hex>` for hub LFS and Ollama blobs, else the real path). */
  contentKey: string;
  /** Store models: what `tabagent rm` removes (files relative to the snapshot; null: the whole snapshot). */
  store?: { repo: string; commit: string; files: string[] | null };
}
