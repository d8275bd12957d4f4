import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { openFileByteSource } from "../../detection/gguf/ByteSource.js";
import { BITNET_GGML_TYPES } from "../../detection/gguf/ggmlTypes.js";
import { readGgufHeader } from "../../detection/gguf/readGgufHeader.js";

/**
 * BitNet's TL1 (ARM) and TL2 (x86) kernels are generated per matrix shape when the fork is built
 * (native/build-llama-server.sh --bitnet-kernels; upstream's codegen_tl1.py / codegen_tl2.py), and the fork divides
 * by zero (SIGFPE) while loading a TL1/TL2 matrix of any other shape, with nothing in its log. So before a start, a
 * TL1/TL2 model is checked against the kernels of the build: build-info.json (which kind the build has) and
 * kernel_config.ini (the shapes), both written by the build script one folder above the binary. A binary from
 * elsewhere (no build-info.json) is not checked. I2_S needs no generated kernels and is never refused here.
 */
export async function bitnetKernelProblem(binary: string, modelPath: string, signal?: AbortSignal): Promise<string | null> {
  const root = join(dirname(binary), "..");
  const info = await readFile(join(root, "build-info.json"), "utf8").then(
    (text) => JSON.parse(text) as { variant?: unknown; cmakeFlags?: unknown },
    () => null,
  );
  if (info === null || info.variant !== "bitnet") return null;
  const src = await openFileByteSource(modelPath);
  let tensors;
  try {
    tensors = (await readGgufHeader(src, { signal })).tensors;
  } finally {
    await src.close();
  }
  const lut = tensors.filter((t) => BITNET_GGML_TYPES[t.type] === "TL1" || BITNET_GGML_TYPES[t.type] === "TL2");
  if (lut.length === 0) return null;
  const kind = BITNET_GGML_TYPES[lut[0]!.type]!;
  const flags = Array.isArray(info.cmakeFlags) ? info.cmakeFlags.map(String) : [];
  const wanted = kind === "TL2" ? "-DBITNET_X86_TL2=ON" : "-DBITNET_ARM_TL1=ON";
  if (!flags.includes(wanted)) {
    return (
      `it has ${kind} matrices, and this BitNet build has no ${kind} kernels (${kind === "TL2" ? "x86_64" : "arm64"} builds generate them); ` +
      `use the model's I2_S file, or build on that platform with native/build-llama-server.sh --variant bitnet`
    );
  }
  const shapes = parseKernelShapes(await readFile(join(root, "kernel_config.ini"), "utf8").catch(() => ""));
  if (shapes.length === 0) return null;
  // ggml's dims are [K, M]: ne0 is the row length.
  const missing = lut.find((t) => !shapes.some((s) => s.m === t.dims[1] && s.k === t.dims[0]));
  if (!missing) return null;
  return (
    `its ${kind} matrix ${missing.name} is ${missing.dims[1]}×${missing.dims[0]} (M×K), and this build's ${kind} kernels cover only ` +
    `${shapes.map((s) => `${s.m}×${s.k}`).join(", ")}; rebuild with native/build-llama-server.sh --variant bitnet --bitnet-kernels <model> ` +
    "for this model's shapes, or use its I2_S file"
  );
}

/** `[Kernels_N]` sections with `m` and `k`, as codegen_tl1.py / codegen_tl2.py write them. */
export function parseKernelShapes(ini: string): { m: number; k: number }[] {
  const shapes: { m: number; k: number }[] = [];
  let current: { m?: number; k?: number } | null = null;
  const flush = () => {
    if (current?.m !== undefined && current.k !== undefined) shapes.push({ m: current.m, k: current.k });
  };
  for (const raw of ini.split(/\r?\n/)) {
    const line = raw.trim();
    if (/^\[.*\]$/.test(line)) {
      flush();
      current = {};
      continue;
    }
    const kv = /^(\w+)\s*=\s*(\d+)$/.exec(line);
    if (kv && current) {
      const key = kv[1]!.toLowerCase();
      if (key === "m") current.m = Number(kv[2]);
      if (key === "k") current.k = Number(kv[2]);
    }
  }
  flush();
  return shapes;
}
