import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { InferenceSession } from "onnxruntime-node";
import type { Logger } from "pino";
import { findCuda12Libraries, preloadCuda12Libraries, type Cuda12Lookup } from "../../native/findCuda12Libraries.js";
import { chooseExecutionProviders, type OnnxProviderName } from "./chooseExecutionProviders.js";
import { OnnxWorkerSession, type OnnxRunner } from "./OnnxWorkerSession.js";

export type OrtModule = typeof import("onnxruntime-node");

export interface OnnxSessionOptions {
  /** Intra-op threads. ONNX Runtime would otherwise start one per core and spin them between steps. */
  threads: number;
  /** Preferred execution providers; CPU is always the last resort. */
  providers: readonly OnnxProviderName[];
  /** A model's `device` setting (`cpu`, `cuda`, `cuda:N`, `auto`). */
  device: string | undefined;
  logger: Logger;
}

export interface OnnxSession {
  ort: OrtModule;
  /** Runs in a worker thread (OnnxWorkerSession), so decoding never blocks the event loop. */
  session: OnnxRunner;
  /** The execution provider the session runs on. */
  provider: OnnxProviderName;
  /** Why a provider that was asked for is not in use. */
  notes: string[];
}

/** Provider libraries that onnxruntime-node's install step adds next to its binding (not on npm). */
const PROVIDER_LIBRARIES: Record<string, string> = {
  cuda: "libonnxruntime_providers_cuda.so",
  tensorrt: "libonnxruntime_providers_tensorrt.so",
};

function bindingFolder(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve("onnxruntime-node/package.json"));
  return join(pkg, "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Opens a graph on the first execution provider that works: the configured ones that this onnxruntime-node has
 * (installed, for CUDA and TensorRT), then CPU. A provider that fails to initialise (no GPU, missing CUDA
 * libraries) is logged with ONNX Runtime's reason and the session is created on CPU instead.
 */
export async function createOnnxSession(path: string, options: OnnxSessionOptions): Promise<OnnxSession> {
  const ort = await import("onnxruntime-node");
  const folder = bindingFolder();
  let cuda12: Cuda12Lookup | null = null;
  const lookupCuda12 = () => (cuda12 ??= findCuda12Libraries({ env: process.env }));
  const choice = chooseExecutionProviders(
    options.providers,
    options.device,
    ort.listSupportedBackends(),
    (name) => {
      const lib = PROVIDER_LIBRARIES[name];
      return lib === undefined || existsSync(join(folder, lib));
    },
    lookupCuda12,
  );
  const notes = [...choice.notes];
  // The provider dlopens its CUDA 12 libraries by soname: load the ones found (wheels, TABAGENT_CUDA12_LIBS) first.
  if (cuda12 !== null && (cuda12 as Cuda12Lookup).ok) {
    for (const failed of preloadCuda12Libraries(cuda12)) notes.push(`a CUDA 12 library failed to load: ${failed}`);
  }
  for (const note of notes) options.logger.warn(`ONNX Runtime: ${note}; using the next provider`);
  const base: InferenceSession.SessionOptions = {
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
  };
  let lastError: unknown = null;
  for (const provider of choice.providers) {
    const ep: InferenceSession.ExecutionProviderConfig =
      (provider === "cuda" || provider === "tensorrt") && choice.deviceId !== null ? { name: provider, deviceId: choice.deviceId } : provider;
    try {
      const session = await OnnxWorkerSession.create(path, { ...base, executionProviders: [ep] });
      return { ort, session, provider, notes };
    } catch (err) {
      lastError = err;
      if (provider === "cpu") break;
      const note = `the ${provider} execution provider failed to start (${(err as Error).message.split("\n")[0]})`;
      notes.push(note);
      options.logger.warn(`ONNX Runtime: ${note}; falling back`);
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}
