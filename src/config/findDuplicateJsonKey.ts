/** A place in a text file, both 1-based. */
export interface TextPosition {
  line: number;
  column: number;
}

interface DuplicateJsonKey {
  /** Where the repeated key sits: `["models", 1, "id"]`. */
  path: (string | number)[];
  /** The second occurrence (JSON.parse keeps its value and drops the first). */
  at: TextPosition;
  first: TextPosition;
}

type Frame = { kind: "object"; keys: Map<string, number>; key: string | undefined; expectKey: boolean } | { kind: "array"; index: number };

/**
 * The first key that appears twice in one object of `text`, which must be JSON that JSON.parse accepts; null when
 * there is none. Keys are compared as JSON.parse decodes them (`"\u0068ost"` repeats `"host"`).
 */
export function findDuplicateJsonKey(text: string): DuplicateJsonKey | null {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (top?.kind === "object" && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        const first = top.keys.get(key);
        if (first !== undefined) return { path: [...pathOf(stack.slice(0, -1)), key], at: positionOf(text, i), first: positionOf(text, first) };
        top.keys.set(key, i);
        top.key = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === "{") {
      stack.push({ kind: "object", keys: new Map(), key: undefined, expectKey: true });
    } else if (c === "[") {
      stack.push({ kind: "array", index: 0 });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      if (top?.kind === "object") top.expectKey = true;
      else if (top?.kind === "array") top.index++;
    }
  }
  return null;
}

/** The key path down to the innermost open container: each object's current key, each array's current index. */
function pathOf(frames: Frame[]): (string | number)[] {
  return frames.map((f) => (f.kind === "object" ? (f.key ?? "") : f.index));
}

/** The line and column (both 1-based) of a character offset in `text`. */
export function positionOf(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  for (let nl = text.indexOf("\n"); nl !== -1 && nl < offset; nl = text.indexOf("\n", nl + 1)) {
    line++;
    lineStart = nl + 1;
  }
  return { line, column: offset - lineStart + 1 };
}
