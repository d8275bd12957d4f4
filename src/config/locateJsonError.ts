/**
 * The offset of the first character at which `text` stops being JSON (RFC 8259), `text.length` when it ends too
 * early, or null when it is valid JSON. For error messages: V8's own message gives no position for an unexpected
 * token ("Unexpected token 'x', "..." is not valid JSON").
 */
export function locateJsonError(text: string): number | null {
  let i = 0;
  const fail = (at: number = i): never => {
    throw new JsonStop(at);
  };
  const space = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const digits = () => {
    const start = i;
    while (i < text.length && text[i]! >= "0" && text[i]! <= "9") i++;
    if (i === start) fail();
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined || c < " ") fail();
      if (c === '"') {
        i++;
        return;
      }
      if (c !== "\\") {
        i++;
        continue;
      }
      const e = text[i + 1];
      if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
      else if (e === "u") {
        for (let k = 2; k < 6; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? "")) fail(i + k);
        i += 6;
      } else fail(i + 1);
    }
  };
  const number = () => {
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else digits();
    if (text[i] === ".") {
      i++;
      digits();
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      digits();
    }
  };
  const value = (depth: number): void => {
    if (depth > 10_000) fail();
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      space();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] !== '"') fail();
        string();
        space();
        if (text[i] !== ":") fail();
        i++;
        value(depth + 1);
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return;
        } else fail();
      }
    }
    if (c === "[") {
      i++;
      space();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return number();
    for (const literal of ["true", "false", "null"]) {
      if (c !== literal[0]) continue;
      for (let k = 1; k < literal.length; k++) if (text[i + k] !== literal[k]) fail(i + k);
      i += literal.length;
      return;
    }
    fail();
  };
  try {
    value(0);
    space();
    if (i < text.length) fail();
    return null;
  } catch (err) {
    if (err instanceof JsonStop) return Math.min(err.at, text.length);
    throw err;
  }
}

class JsonStop extends Error {
  constructor(readonly at: number) {
    super(`not JSON from offset ${at}`);
  }
}
