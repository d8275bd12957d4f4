import { endianness } from "node:os";
import { MAX_OUTGOING_BYTES } from "./nativeMessagingLimits.js";

const LITTLE = endianness() === "LE";

/** One frame: the 32-bit native-order length, then the UTF-8 JSON. */
export function encodeFrame(json: string): Buffer {
  const bodyBytes = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(4 + bodyBytes);
  if (LITTLE) frame.writeUInt32LE(bodyBytes, 0);
  else frame.writeUInt32BE(bodyBytes, 0);
  frame.write(json, 4, "utf8");
  return frame;
}

/** Room for the part envelope `{"id":…,"part":…,"parts":…,"data":""}` around a part's data. */
const ENVELOPE_ROOM = 1024;

/**
 * The frames that carry `message` to the browser. A message whose JSON is over `maxBytes` is sent as ordered parts
 * `{id, part, parts, data}`: the `data` strings, joined in `part` order (0-based), are the message's JSON text.
 */
export function encodeFrames(message: { id: unknown } & Record<string, unknown>, maxBytes = MAX_OUTGOING_BYTES): Buffer[] {
  const json = JSON.stringify(message);
  if (Buffer.byteLength(json) <= maxBytes) return [encodeFrame(json)];
  const idJson = JSON.stringify(message.id ?? null);
  const budget = maxBytes - ENVELOPE_ROOM - Buffer.byteLength(idJson);
  const slices: string[] = [];
  let start = 0;
  // Characters per part, adapted to how much JSON escaping (quotes, backslashes) and UTF-8 grow the text.
  let chars = budget;
  while (start < json.length) {
    let end = Math.min(json.length, start + chars);
    for (;;) {
      // Never split a surrogate pair: each half would be escaped on its own and the join would not be the text.
      const code = json.charCodeAt(end - 1);
      if (end < json.length && code >= 0xd800 && code <= 0xdbff) end = end - 1 > start ? end - 1 : end + 1;
      const size = Buffer.byteLength(JSON.stringify(json.slice(start, end)));
      if (size <= budget) break;
      end = start + Math.max(1, Math.floor(((end - start) * budget) / size) - 8);
    }
    slices.push(json.slice(start, end));
    chars = Math.min(budget, Math.ceil((end - start) * 1.25));
    start = end;
  }
  return slices.map((data, part) => encodeFrame(`{"id":${idJson},"part":${part},"parts":${slices.length},"data":${JSON.stringify(data)}}`));
}
