/**
 * What detection learns from streaming `tokenizer.ggml.tokens` once: the facts llama.cpp's vocabulary loader depends
 * on and would abort the whole process over (a duplicate string trips a GGML_ASSERT; a missing byte token makes
 * `byte_to_token` throw std::out_of_range past every handler). Strings are kept as latin1 keys (one char per byte),
 * so a lookup compares bytes exactly as llama.cpp's std::string map does.
 */
export class GgufTokenScan {
  count = 0;
  /** The first token that is not valid UTF-8, if any. */
  invalidUtf8: number | null = null;
  /** The first pair of ids whose strings llama.cpp sees as equal. */
  duplicate: { first: number; second: number; text: string } | null = null;
  /** Total bytes of token text. */
  bytes = 0;
  private readonly ids = new Map<string, number>();

  /** Token `index` is `buf[start, end)`. */
  add(buf: Uint8Array, start: number, end: number, index: number): void {
    this.count++;
    this.bytes += end - start;
    if (this.invalidUtf8 === null && !isUtf8(buf, start, end)) this.invalidUtf8 = index;
    // llama.cpp reads each token through a C string (`gguf_get_arr_str`): it ends at the first NUL, and an empty
    // token is renamed `[EMPTY_<id>]` before it goes into the map.
    let stop = start;
    while (stop < end && buf[stop] !== 0) stop++;
    const key = stop === start ? `[EMPTY_${index}]` : latin1(buf, start, stop);
    const seen = this.ids.get(key);
    if (seen !== undefined) {
      this.duplicate ??= { first: seen, second: index, text: key };
    } else this.ids.set(key, index);
  }

  /** Whether a token with exactly these bytes exists (`text` as latin1: one char per byte). */
  hasBytes(text: string): boolean {
    return this.ids.has(text);
  }

  /** Whether a token spells this (UTF-8) text. */
  has(text: string): boolean {
    return this.ids.has(Buffer.from(text, "utf8").toString("latin1"));
  }
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  // Short tokens are the norm: building the string directly beats a Buffer view per token.
  if (end - start <= 16) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
    return s;
  }
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString("latin1");
}

/** Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF), as `TextDecoder({ fatal: true })` checks it. */
function isUtf8(b: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    let cp: number;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else return false;
    if (i + n >= end) return false;
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k]!;
      if ((cc & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}
