/** A key path as a user would write it: `["models", 0, "contextSize"]` -> `models[0].contextSize`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
}
