import type { GgufModelFiles } from "./gguf/detectGgufModel.js";
import type { ModelFileEntry } from "./ModelFileSystem.js";

const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;
const PROJECTOR = /(^|[-_./])mmproj([-_.]|$)/i;

export function isProjectorFile(path: string): boolean {
  return PROJECTOR.test(path.split("/").pop() ?? path);
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/**
 * Groups the GGUF files of a folder into models: split files (`name-00001-of-00003.gguf`) become one model, and a
 * vision projector (`mmproj*.gguf`) is attached to the model beside it instead of being listed as one.
 */
export function groupGgufFiles(entries: readonly ModelFileEntry[]): GgufModelFiles[] {
  const gguf = entries.filter((e) => /\.gguf$/i.test(e.path));
  const projectors = gguf.filter((e) => isProjectorFile(e.path));
  const models: GgufModelFiles[] = [];
  const splits = new Map<string, ModelFileEntry[]>();
  for (const e of gguf) {
    if (isProjectorFile(e.path)) continue;
    const m = SHARD.exec(e.path);
    if (m) {
      const key = `${m[1]}/${m[3]}`;
      splits.set(key, [...(splits.get(key) ?? []), e]);
    } else {
      models.push({ main: e, shards: [], projector: null });
    }
  }
  for (const parts of splits.values()) {
    parts.sort((a, b) => a.path.localeCompare(b.path));
    models.push({ main: parts[0]!, shards: parts.slice(1), projector: null });
  }
  for (const p of projectors) {
    const siblings = models.filter((m) => dirOf(m.main.path) === dirOf(p.path));
    // The projector belongs to the only model beside it, or to the one whose name it shares a prefix with.
    const owner =
      siblings.length === 1
        ? siblings[0]
        : siblings.find((m) => {
            const base = m.main.path
              .split("/")
              .pop()!
              .replace(/(-\d{5}-of-\d{5})?\.gguf$/i, "")
              .toLowerCase();
            const proj = p.path.split("/").pop()!.toLowerCase();
            return proj.includes(base.split(/[-_.]/)[0] ?? base);
          });
    if (owner && !owner.projector) owner.projector = p;
  }
  return models.sort((a, b) => a.main.path.localeCompare(b.main.path));
}
