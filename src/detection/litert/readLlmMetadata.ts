import { InvalidLiteRtError } from "./InvalidLiteRtError.js";

/** What detection needs from LiteRT-LM's LlmMetadata proto (runtime/proto/llm_metadata.proto). */
export interface LlmMetadataSummary {
  /** Field 7, `jinja_prompt_template`: the bundle carries its chat template. */
  hasJinjaTemplate: boolean;
  /** Field 5, `max_num_tokens`: the KV cache's size; null when unset. */
  maxNumTokens: number | null;
}

/** Metadata larger than this is not read (real ones are a few KiB; the template is most of it). */
export const MAX_LLM_METADATA_BYTES = 1 << 20;

/**
 * Scans the top level of an LlmMetadata message (protobuf wire format) for the two fields detection reports. Any
 * malformed varint, length or wire type is an InvalidLiteRtError: the runtime would refuse the bundle too.
 */
export function readLlmMetadata(bytes: Uint8Array): LlmMetadataSummary {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new InvalidLiteRtError("LlmMetadata: a varint runs past the end");
      const b = bytes[pos++]!;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) return value;
    }
    throw new InvalidLiteRtError("LlmMetadata: a varint longer than 10 bytes");
  };
  const skip = (n: number) => {
    if (n > bytes.length - pos) throw new InvalidLiteRtError("LlmMetadata: a field runs past the end");
    pos += n;
  };
  const out: LlmMetadataSummary = { hasJinjaTemplate: false, maxNumTokens: null };
  while (pos < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new InvalidLiteRtError("LlmMetadata: field number 0");
    if (wire === 0) {
      const v = varint();
      if (field === 5) out.maxNumTokens = v > 0 && v <= 0x7fffffff ? v : null;
    } else if (wire === 2) {
      const n = varint();
      if (field === 7 && n > 0) out.hasJinjaTemplate = true;
      skip(n);
    } else if (wire === 1) skip(8);
    else if (wire === 5) skip(4);
    else throw new InvalidLiteRtError(`LlmMetadata: wire type ${wire} is not valid here`);
  }
  return out;
}
