import type { ONNX_PROVIDERS } from "../../config/onnxProviders.js";
import type { Cuda12Lookup } from "../../native/findCuda12Libraries.js";

/** A provider name as config lists it (`onnxProviders`) and session options take it. */
export type OnnxProviderName = (typeof ONNX_PROVIDERS)[number];

export interface AvailableProvider {
  name: string;
  /** Shipped inside the npm package; when false its library comes from onnxruntime-node's install step. */
  bundled: boolean;
}

export interface ProviderChoice {
  /** In preference order; always ends with CPU, the provider every build has. */
  providers: OnnxProviderName[];
  /** The CUDA / TensorRT device, from a model's `device: "cuda:N"`. */
  deviceId: number | null;
  /** Why a provider that was asked for is left out: said once in the log and in /v1/models. */
  notes: string[];
}

export const CUDA_PROVIDER_HELP =
  "onnxruntime-node's CUDA provider is downloaded by its install step, which this project skips (package.json's " +
  "allowScripts; ONNXRUNTIME_NODE_INSTALL=skip for npm 10). On a machine with CUDA 12 and cuDNN 9, run " +
  "`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` (see docs/backends.md)";

/**
 * Which providers a session is created with. `configured` is the daemon's preference list (`onnxProviders`); a
 * model's `device` overrides it (`cpu`, `cuda`, `cuda:N`; `auto` = CUDA when it is installed). A provider that this
 * onnxruntime-node build lacks, or whose library was never installed, is dropped with a note; CPU always remains.
 * CUDA and TensorRT also need the CUDA 12 libraries their provider links against (`cuda12`, looked up only then):
 * without them the provider is dropped with the lookup's reason, even under `auto` (the provider was installed, so
 * its absence is worth saying).
 */
export function chooseExecutionProviders(
  configured: readonly OnnxProviderName[],
  device: string | undefined,
  available: readonly AvailableProvider[],
  isInstalled: (name: string) => boolean,
  cuda12?: () => Cuda12Lookup,
): ProviderChoice {
  let wanted: OnnxProviderName[] = [...configured];
  let deviceId: number | null = null;
  let auto = false;
  if (device !== undefined) {
    const m = /^cuda(?::(\d+))?$/.exec(device);
    if (device === "cpu") wanted = ["cpu"];
    else if (m) {
      wanted = ["cuda"];
      deviceId = m[1] === undefined ? null : Number(m[1]);
    } else if (device === "auto") {
      wanted = ["cuda", ...configured.filter((p) => p !== "cuda")];
      auto = true;
    }
  }
  const notes: string[] = [];
  const providers: OnnxProviderName[] = [];
  for (const name of wanted) {
    if (name === "cpu" || providers.includes(name)) continue;
    const found = available.find((a) => a.name === name);
    if (!found) {
      if (!auto) notes.push(`the ${name} execution provider is not part of this onnxruntime-node build for ${process.platform}/${process.arch}`);
      continue;
    }
    if (!found.bundled && !isInstalled(name)) {
      if (!auto) notes.push(`the ${name} execution provider is not installed: ${name === "cuda" || name === "tensorrt" ? CUDA_PROVIDER_HELP : "its library is missing"}`);
      continue;
    }
    if ((name === "cuda" || name === "tensorrt") && cuda12) {
      const lookup = cuda12();
      if (!lookup.ok) {
        notes.push(`the ${name} execution provider cannot start: ${lookup.reason}`);
        continue;
      }
    }
    providers.push(name);
  }
  providers.push("cpu");
  return { providers, deviceId, notes };
}
