import { findLitertPython } from "./findLitertPython.js";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { availableParallelism, cpus, freemem, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { defaultThreads } from "../config/configSchema.js";
import type { EngineName, ModelFormatName } from "../core/detectionSchema.js";
import { ENGINES } from "../engines/engineTable.js";
import { findCuda12Libraries, type Cuda12Lookup } from "./findCuda12Libraries.js";
import { findPythonEnv, missingPythonHelp, type PythonLookup, type PythonSource } from "./findPythonEnv.js";
import { queryGpus, type GpuReport } from "./queryGpus.js";
import {
  findLlamaServer,
  missingBinaryHelp,
  type FindLlamaServerOptions,
  type LlamaServerCandidate,
  type LlamaServerSource,
  type LlamaServerVariant,
} from "./findLlamaServer.js";

interface DoctorOptions {
  env: NodeJS.ProcessEnv;
  /** Per-variant paths from the config file, as findLlamaServer's `configPath`. */
  configPaths?: Partial<Record<LlamaServerVariant, string>>;
  cacheDir?: string;
  releaseDir?: string;
  platform?: NodeJS.Platform;
  pathDirs?: readonly string[];
  /** The thread count in effect (config/flag); default: the daemon's default choice. */
  threads?: number;
  /** Skip loading node-llama-cpp (its GPU probe can take seconds); default true. */
  probeNodeLlamaCpp?: boolean;
  /** config `python` and `dataDir`, for the sidecar's interpreter lookup. */
  pythonPath?: string;
  dataDir?: string;
  /** Limit for each probe: the GPU detection and each `--version` run. Default 20 s. */
  timeoutMs?: number;
  /** The nvidia-smi binary (tests pass a fake); TABAGENT_FAKE_GPUS in `env` replaces the query altogether. */
  nvidiaSmi?: string;
  /** Where to look for CUDA 12 libraries besides env and the daemon's venvs (tests pass []). */
  cuda12SystemDirs?: string[];
  cuda12PythonPrefixes?: string[];
}

interface LlamaServerReport {
  variant: LlamaServerVariant;
  path: string | null;
  source: LlamaServerSource | null;
  tried: LlamaServerCandidate[];
  /** `--version` output of the found binary (llama-server prints it on stderr). */
  version: string | null;
  versionError: string | null;
  /** How to provide the binary, when none was found. */
  help: string | null;
}

interface ProbeResult<T> {
  ok: boolean;
  value: T | null;
  error: string | null;
  ms: number;
}

interface EngineReport {
  name: EngineName;
  summary: string;
  formats: readonly ModelFormatName[];
  /** Whether this machine can run it: true, false, or null when only a running daemon's config can tell (upstreams). */
  available: boolean | null;
  /** Why not, or how to get it; null when available. */
  help: string | null;
  /** Whether it can use this machine's GPU, and why (or why not). */
  gpu: { usable: boolean; reason: string };
}

interface DoctorReport {
  node: { version: string; execPath: string };
  platform: { os: NodeJS.Platform; arch: string; release: string };
  cpu: { count: number; model: string | null; defaultThreads: number; threads: number };
  ram: { totalBytes: number; freeBytes: number };
  /** NVIDIA GPUs (nvidia-smi): name, VRAM total/free, driver, CUDA; empty with the reason when none. */
  gpus: GpuReport;
  /** onnxruntime-node's CUDA provider: its library installed, and the CUDA 12 libraries it needs. */
  onnxCuda: { providerInstalled: boolean; cuda12: Cuda12Lookup };
  nodeLlamaCpp: {
    version: string | null;
    /** Whether the prebuilt CPU binary loads without building or downloading anything. */
    cpu: ProbeResult<{ buildType: string; llamaCppRelease: string }> | null;
    /** What `gpu: "auto"` picks (false when none), and the GPU types this platform could use. */
    gpu: ProbeResult<{ selected: string | false; supportedTypes: string[] }> | null;
  };
  llamaServer: Record<LlamaServerVariant, LlamaServerReport>;
  /** The transformers sidecar's interpreter: where it was found, and whether torch/transformers import. */
  python: {
    path: string | null;
    source: PythonSource | null;
    tried: PythonLookup["tried"];
    /** torch and transformers versions, and whether torch sees CUDA, from the interpreter itself. */
    probe: ProbeResult<{ torch: string; transformers: string; cuda: boolean }> | null;
    help: string | null;
  };
  /** Every engine the daemon knows (the engine table), and whether this machine can run it. */
  engines: EngineReport[];
}

const DEFAULT_TIMEOUT_MS = 20_000;

/** Collects what `tabagent doctor` shows: runtime, CPU, node-llama-cpp health and both llama-server lookups. */
export async function doctorReport(options: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const probe = options.probeNodeLlamaCpp ?? true;
  const fallbackThreads = defaultThreads();

  const [version, standard, bitnet, python, gpus, litert] = await Promise.all([
    nodeLlamaCppVersion(),
    llamaServerReport("standard", options, timeoutMs),
    llamaServerReport("bitnet", options, timeoutMs),
    pythonReport(options, timeoutMs),
    queryGpus({ env: options.env, nvidiaSmi: options.nvidiaSmi, timeoutMs }),
    findLitertPython({ env: options.env, dataDir: options.dataDir }),
  ]);
  const onnxCuda = {
    providerInstalled: onnxCudaProviderInstalled(),
    cuda12: findCuda12Libraries({ env: options.env, systemDirs: options.cuda12SystemDirs, pythonPrefixes: options.cuda12PythonPrefixes }),
  };
  // One after the other: both load native addons, and the GPU probe may spawn test processes.
  const cpuProbe = probe ? await probeCpuBinary() : null;
  const gpuProbe = probe ? await probeGpu(timeoutMs) : null;
  const onnx = await timed(async () => {
    await import("onnxruntime-node");
  });
  // What the probes above found, per engine; an engine without an entry is reported as unknown.
  const available: Partial<Record<EngineName, boolean>> = {
    "node-llama-cpp": cpuProbe ? cpuProbe.ok : version !== null,
    "llama-server": standard.path !== null && standard.versionError === null,
    "llama-server-bitnet": bitnet.path !== null && bitnet.versionError === null,
    onnxruntime: onnx.ok,
    transformers: python.probe?.ok === true,
    // Its venv is found, not probed: importing litert_lm takes seconds (the first request says what failed).
    litert: litert.python !== null,
  };
  const gpuUse = engineGpuUse(gpus, gpuProbe, { standard, bitnet }, python, onnxCuda);
  const engines = Object.values(ENGINES).map((e): EngineReport => {
    const ok = e.load === null ? false : (available[e.name] ?? null);
    const gpu = gpuUse[e.name] ?? { usable: false, reason: e.name === "upstream" ? "runs elsewhere" : "CPU only" };
    return { name: e.name, summary: e.summary, formats: e.formats, available: ok, help: ok === true ? null : e.install, gpu };
  });

  return {
    node: { version: process.version, execPath: process.execPath },
    platform: { os: options.platform ?? process.platform, arch: process.arch, release: release() },
    cpu: {
      count: availableParallelism(),
      model: cpus()[0]?.model.trim() ?? null,
      defaultThreads: fallbackThreads,
      threads: options.threads ?? fallbackThreads,
    },
    ram: { totalBytes: totalmem(), freeBytes: freemem() },
    gpus,
    onnxCuda,
    nodeLlamaCpp: { version, cpu: cpuProbe, gpu: gpuProbe },
    llamaServer: { standard, bitnet },
    python,
    engines,
  };
}

/** Whether onnxruntime-node's install step added the CUDA provider next to its binding. */
function onnxCudaProviderInstalled(): boolean {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"));
    return existsSync(join(pkg, "bin", "napi-v6", process.platform, process.arch, "libonnxruntime_providers_cuda.so"));
  } catch {
    return false;
  }
}

/** Per engine: can it use the NVIDIA GPU nvidia-smi reports, and why not. */
function engineGpuUse(
  gpus: GpuReport,
  nodeGpu: ProbeResult<{ selected: string | false; supportedTypes: string[] }> | null,
  servers: { standard: LlamaServerReport; bitnet: LlamaServerReport },
  python: DoctorReport["python"],
  onnx: { providerInstalled: boolean; cuda12: Cuda12Lookup },
): Partial<Record<EngineName, { usable: boolean; reason: string }>> {
  const out: Partial<Record<EngineName, { usable: boolean; reason: string }>> = {};
  const selected = nodeGpu?.value?.selected;
  out["node-llama-cpp"] =
    nodeGpu === null
      ? { usable: false, reason: "not probed" }
      : selected
        ? { usable: true, reason: `its runtime uses ${selected}` }
        : { usable: false, reason: nodeGpu.ok ? "no GPU runtime loads (CPU build)" : `GPU probe failed: ${nodeGpu.error ?? "unknown"}` };
  if (gpus.gpus.length === 0) {
    const none = { usable: false, reason: `no NVIDIA GPU (${gpus.error ?? "none reported"})` };
    out["llama-server"] = none;
    out["llama-server-bitnet"] = none;
    out.onnxruntime = none;
    out.transformers = python.probe?.value?.cuda ? { usable: true, reason: "torch sees CUDA" } : none;
    return out;
  }
  for (const [name, server] of [
    ["llama-server", servers.standard],
    ["llama-server-bitnet", servers.bitnet],
  ] as const) {
    const cuda = server.path !== null && (existsSync(join(dirname(server.path), "libggml-cuda.so")) || /CUDA/i.test(server.version ?? ""));
    out[name] =
      server.path === null
        ? { usable: false, reason: "not found" }
        : cuda
          ? { usable: true, reason: "a CUDA build" }
          : { usable: false, reason: "a CPU build: rebuild with native/build-llama-server.sh --cmake-flag -DGGML_CUDA=ON" };
  }
  out.transformers = python.probe?.value?.cuda
    ? { usable: true, reason: "torch sees CUDA" }
    : { usable: false, reason: python.probe?.ok ? "this torch build has no CUDA (tabagent setup python --cuda)" : "no working sidecar venv" };
  out.onnxruntime = !onnx.providerInstalled
    ? { usable: false, reason: "the CUDA execution provider is not installed (docs/backends.md)" }
    : onnx.cuda12.ok
      ? { usable: true, reason: onnx.cuda12.reason }
      : { usable: false, reason: onnx.cuda12.reason };
  return out;
}

async function pythonReport(options: DoctorOptions, timeoutMs: number): Promise<DoctorReport["python"]> {
  const found = await findPythonEnv({ configPath: options.pythonPath, env: options.env, dataDir: options.dataDir });
  if (found.python === null) return { path: null, source: null, tried: found.tried, probe: null, help: missingPythonHelp(found) };
  const python = found.python;
  const probe = await timed(async () => {
    const code =
      "import json, torch, transformers; print(json.dumps({'torch': torch.__version__, 'transformers': transformers.__version__, 'cuda': torch.cuda.is_available()}))";
    const { stdout } = await execa(python, ["-c", code], { timeout: timeoutMs, env: { ...options.env, HF_HUB_OFFLINE: "1" } });
    return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { torch: string; transformers: string; cuda: boolean };
  });
  return { path: python, source: found.source, tried: found.tried, probe, help: null };
}

async function llamaServerReport(variant: LlamaServerVariant, options: DoctorOptions, timeoutMs: number): Promise<LlamaServerReport> {
  const lookup: FindLlamaServerOptions = { env: options.env };
  const configPath = options.configPaths?.[variant];
  if (configPath !== undefined) lookup.configPath = configPath;
  if (options.cacheDir !== undefined) lookup.cacheDir = options.cacheDir;
  if (options.releaseDir !== undefined) lookup.releaseDir = options.releaseDir;
  if (options.platform !== undefined) lookup.platform = options.platform;
  if (options.pathDirs !== undefined) lookup.pathDirs = options.pathDirs;

  const found = await findLlamaServer(variant, lookup);
  if (found.path === null) {
    return { variant, path: null, source: null, tried: found.tried, version: null, versionError: null, help: missingBinaryHelp(variant) };
  }
  const run = await execa(found.path, ["--version"], {
    reject: false,
    all: true,
    stdin: "ignore",
    timeout: timeoutMs,
    env: { ...options.env, LLAMA_LOG_COLORS: "off" },
  });
  const output = (run.all ?? "").trim();
  let versionError: string | null = null;
  if (run.timedOut) versionError = `--version did not finish within ${timeoutMs} ms`;
  else if (run.failed) versionError = run.exitCode === undefined ? (run.shortMessage ?? "could not start") : `--version exited with ${run.exitCode}`;
  return {
    variant,
    path: found.path,
    source: found.source,
    tried: found.tried,
    version: output === "" ? null : output,
    versionError,
    help: null,
  };
}

/** node-llama-cpp's package.json is not in its exports map, so find it from the resolved entry point. */
async function nodeLlamaCppVersion(): Promise<string | null> {
  try {
    let dir = dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
    for (let i = 0; i < 5; i++) {
      try {
        const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
        if (pkg.name === "node-llama-cpp") return pkg.version ?? null;
      } catch {
        // no package.json at this level
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed
  }
  return null;
}

async function timed<T>(work: () => Promise<T>): Promise<ProbeResult<T>> {
  const started = performance.now();
  try {
    const value = await work();
    return { ok: true, value, error: null, ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, value: null, error: err instanceof Error ? err.message : String(err), ms: Math.round(performance.now() - started) };
  }
}

function probeCpuBinary(): Promise<ProbeResult<{ buildType: string; llamaCppRelease: string }>> {
  return timed(async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    // build: "never" + skipDownload: a doctor must not start a 10-minute compile or reach the network.
    const llama = await getLlama({
      gpu: false,
      build: "never",
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
    });
    try {
      return { buildType: llama.buildType, llamaCppRelease: llama.llamaCppRelease.release };
    } finally {
      await llama.dispose();
    }
  });
}

function probeGpu(timeoutMs: number): Promise<ProbeResult<{ selected: string | false; supportedTypes: string[] }>> {
  return timed(async () => {
    const { getLlama, getLlamaGpuTypes, LlamaLogLevel } = await import("node-llama-cpp");
    const pending = getLlama({
      gpu: "auto",
      build: "never",
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`GPU detection did not finish within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const llama = await Promise.race([pending, timeout]);
      try {
        const supportedTypes = (await getLlamaGpuTypes("supported")).flatMap((t) => (t === false ? [] : [t]));
        return { selected: llama.gpu, supportedTypes };
      } finally {
        await llama.dispose();
      }
    } catch (err) {
      // A probe that outlives its timeout still gets disposed when it finally resolves.
      void pending.then((late) => late.dispose()).catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  });
}

/** The human form of the report; `tabagent doctor --json` prints the object itself. */
export function formatDoctorReport(report: DoctorReport): string {
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(20)}${text}`);
  const { node, platform, cpu, nodeLlamaCpp } = report;
  row("node", `${node.version} (${node.execPath})`);
  row("platform", `${platform.os} ${platform.arch} (${platform.release})`);
  row(
    "cpu",
    `${cpu.count} logical CPUs${cpu.model ? `, ${cpu.model}` : ""}; threads ${cpu.threads}` +
      (cpu.threads === cpu.defaultThreads ? " (default)" : ` (default would be ${cpu.defaultThreads})`),
  );

  const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  row("ram", `${gib(report.ram.totalBytes)} total, ${gib(report.ram.freeBytes)} free`);
  if (report.gpus.gpus.length === 0) row("gpus", `none (${report.gpus.error ?? "none reported"})`);
  for (const g of report.gpus.gpus) {
    row(
      `gpu ${g.index}`,
      `${g.name}, ${gib(g.vramTotalBytes)} VRAM, ${gib(g.vramFreeBytes)} free; driver ${g.driver}${report.gpus.cuda ? `, CUDA ${report.gpus.cuda}` : ""}`,
    );
  }
  row("onnx cuda", report.onnxCuda.providerInstalled ? report.onnxCuda.cuda12.reason : "the CUDA execution provider is not installed");

  row("node-llama-cpp", nodeLlamaCpp.version ?? "not installed");
  if (nodeLlamaCpp.cpu) {
    const p = nodeLlamaCpp.cpu;
    row("  cpu binary", p.ok && p.value ? `loads (${p.value.buildType}, llama.cpp ${p.value.llamaCppRelease}, ${p.ms} ms)` : `FAILED: ${p.error ?? "unknown error"}`);
  }
  if (nodeLlamaCpp.gpu) {
    const p = nodeLlamaCpp.gpu;
    if (p.ok && p.value) {
      const supported = p.value.supportedTypes;
      row(
        "  gpu (auto)",
        `${p.value.selected === false ? "none usable, runs on the CPU" : p.value.selected}` +
          `; this platform supports: ${supported.length > 0 ? supported.join(", ") : "none"} (${p.ms} ms)`,
      );
    } else {
      row("  gpu (auto)", `FAILED: ${p.error ?? "unknown error"}`);
    }
  }

  for (const server of [report.llamaServer.standard, report.llamaServer.bitnet]) {
    const name = server.variant === "standard" ? "llama-server" : "llama-server-bitnet";
    if (server.path === null) {
      row(name, "NOT FOUND");
    } else {
      row(name, `${server.path} (from ${server.source})`);
      const output = server.version?.split("\n") ?? [];
      const version = output.find((l) => /version/i.test(l)) ?? output[0];
      if (version) row("  version", version.trim());
      if (server.versionError) row("  version", `FAILED: ${server.versionError}`);
    }
    for (const t of server.tried) row("  skipped", `${t.source}: ${t.path} ${t.problem}`);
    if (server.help) row("  help", server.help);
  }
  const py = report.python;
  row("python (sidecar)", py.path === null ? "NOT FOUND" : `${py.path} (from ${py.source})`);
  if (py.probe) {
    row(
      "  packages",
      py.probe.ok && py.probe.value
        ? `torch ${py.probe.value.torch}, transformers ${py.probe.value.transformers}; CUDA ${py.probe.value.cuda ? "available" : "not available"} (${py.probe.ms} ms)`
        : `FAILED: ${py.probe.error ?? "unknown error"}`,
    );
  }
  if (py.path === null) for (const t of py.tried) row("  skipped", `${t.source}: ${t.path} ${t.problem}`);
  if (py.help) row("  help", `run \`tabagent setup python\` (--cuda or --cpu picks the torch build)`);
  lines.push("engines");
  for (const e of report.engines) {
    const state = e.available === true ? "ready" : e.available === false ? "NOT AVAILABLE" : "depends on the config";
    lines.push(`  ${e.name.padEnd(22)}${state}; ${e.formats.length > 0 ? e.formats.join(", ") : "proxied models"}`);
    if (e.available === false && e.help) lines.push(`${"".padEnd(24)}${e.help}`);
    if (e.available !== false) lines.push(`${"".padEnd(24)}GPU: ${e.gpu.usable ? "yes" : "no"} (${e.gpu.reason})`);
  }
  return `${lines.join("\n")}\n`;
}
