import { BITNET_ARCHITECTURES, BITNET_GGML_TYPES, MAINLINE_GGML_TYPES, MAINLINE_TERNARY_TYPES, ggmlTypeName } from "./ggmlTypes.js";

export interface TensorTypeUse {
  type: number;
  count: number;
  /** The first tensor of this type, named in reasons. */
  example: string;
}

interface GgufFlavor {
  bitnet: boolean;
  /** Which key or tensor type decided, in words. */
  reason: string;
}

/**
 * Standard llama.cpp or Microsoft's BitNet build? Decided from the header alone: tensor types first (they say what
 * kernels the file needs), then the architecture name.
 */
export function decideGgufFlavor(architecture: string | null, tensorTypes: readonly TensorTypeUse[]): GgufFlavor {
  const arch = architecture ?? "";
  const bitnetArch = BITNET_ARCHITECTURES.has(arch);
  for (const t of tensorTypes) {
    if (t.type === 39 && !bitnetArch) continue; // mainline MXFP4 unless the model is a BitNet one (then TL2)
    if (BITNET_GGML_TYPES[t.type] !== undefined) {
      return {
        bitnet: true,
        reason: `tensor ${t.example} has type ${BITNET_GGML_TYPES[t.type]} (ggml type ${t.type}), which only the BitNet build of llama.cpp runs`,
      };
    }
    if (MAINLINE_GGML_TYPES[t.type] === undefined) {
      return {
        bitnet: true,
        reason: `tensor ${t.example} has ggml type ${t.type}, which mainline ggml does not define (BitNet build assumed)`,
      };
    }
  }
  const ternary = tensorTypes.find((t) => MAINLINE_TERNARY_TYPES.has(t.type));
  if (ternary) {
    return {
      bitnet: false,
      reason: `ternary tensors (${ggmlTypeName(ternary.type, false)}, e.g. ${ternary.example}) run on mainline llama.cpp`,
    };
  }
  if (bitnetArch) {
    return { bitnet: true, reason: `general.architecture = ${arch}: a BitNet 1.58 model` };
  }
  return { bitnet: false, reason: `general.architecture = ${arch || "(none)"} with mainline tensor types` };
}
