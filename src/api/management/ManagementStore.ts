/**
 * What the management API needs from the store, as the store emits it (src/store/pullModel.ts PullEvent): the API
 * layer sees these shapes only, and the daemon passes in the store's implementation (src/store/storeActions.ts).
 */
export type PullModelEvent =
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
  | { type: "done" };

/** Where a served model comes from, as `tabagent ls` says; `store` models name what deleting them removes. */
export interface OriginInfo {
  origin: "config" | "models-dir" | "store" | "lmstudio" | "ollama";
  label: string;
  store?: { repo: string; commit: string; files: string[] | null };
}

/** A finished pull, the model registered (id null: its files make no servable model id). */
export interface PulledModel {
  id: string | null;
  repo: string;
  commit: string;
  path: string;
  fetchedBytes: number;
  resumedBytes: number;
  seconds: number;
}

export interface ManagementStore {
  /** Throws (400 invalid_source) when `source` is not `owner/name[@revision][:file-or-quant]`; nothing starts. */
  checkSource(source: string): void;
  /** `tabagent pull` into the store, then the model is served at once and its origin recorded. */
  pull(source: string, signal: AbortSignal, onEvent: (event: PullModelEvent) => void): Promise<PulledModel>;
  /** Deletes a store model's files (the registry entry is the caller's). */
  remove(location: NonNullable<OriginInfo["store"]>): Promise<{ freedBytes: number }>;
}
