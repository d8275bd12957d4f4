import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { doctorReport, formatDoctorReport } from "../../src/native/doctorReport.js";
import { pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { fakeLlamaServer, writeScript } from "./fakeExecutable.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tabagent-doctor-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("doctorReport", () => {
  it("reports both lookups, the found binary's --version and the thread choice", async () => {
    const standard = await fakeLlamaServer(join(root, "bin", "llama-server"), "doctor-test");
    const report = await doctorReport({
      env: { TABAGENT_LLAMA_SERVER: standard },
      cacheDir: join(root, "cache"),
      pathDirs: [],
      threads: 3,
      probeNodeLlamaCpp: false,
      dataDir: join(root, "data"),
    });
    expect(report.node.version).toBe(process.version);
    expect(report.cpu.count).toBeGreaterThan(0);
    expect(report.cpu.threads).toBe(3);
    expect(report.cpu.defaultThreads).toBeGreaterThanOrEqual(1);
    expect(report.nodeLlamaCpp.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.nodeLlamaCpp.cpu).toBeNull();
    expect(report.llamaServer.standard).toMatchObject({ path: standard, source: "env", versionError: null, help: null });
    expect(report.llamaServer.standard.version).toMatch(/version: 4242 \(doctor-test\)/);
    expect(report.llamaServer.bitnet).toMatchObject({ path: null, source: null, version: null });
    expect(report.llamaServer.bitnet.help).toMatch(/TABAGENT_LLAMA_SERVER_BITNET/);

    const text = formatDoctorReport(report);
    expect(text).toMatch(new RegExp(`llama-server\\s+${standard} \\(from env\\)`));
    expect(text).toMatch(/version\s+version: 4242 \(doctor-test\)/);
    expect(text).toMatch(/llama-server-bitnet\s+NOT FOUND/);
    expect(text).toMatch(/threads 3/);
    // The engine table, with what this machine can run: the fake standard build is there, the BitNet one is not.
    expect(report.engines.map((e) => e.name)).toEqual(["node-llama-cpp", "llama-server", "llama-server-bitnet", "onnxruntime", "transformers", "litert", "upstream"]);
    const engine = (name: string) => report.engines.find((e) => e.name === name);
    expect(engine("llama-server")).toMatchObject({ available: true, formats: ["gguf"], help: null });
    expect(engine("llama-server-bitnet")).toMatchObject({ available: false, formats: ["bitnet-gguf"], help: expect.stringMatching(/docs\/native\.md/) });
    expect(engine("onnxruntime")?.available).toBe(true);
    expect(engine("litert")).toMatchObject({ available: false, help: expect.stringMatching(/tabagent setup litert/) });
    // With its interpreter there (here: named by TABAGENT_LITERT_PYTHON), the LiteRT engine is available.
    const withLitert = await doctorReport({
      env: { TABAGENT_LITERT_PYTHON: process.execPath },
      cacheDir: join(root, "cache"),
      pathDirs: [],
      probeNodeLlamaCpp: false,
      dataDir: join(root, "data"),
    });
    expect(withLitert.engines.find((e) => e.name === "litert")).toMatchObject({ available: true, help: null });
    expect(engine("upstream")?.available).toBeNull();
    expect(text).toMatch(/engines\n(.*\n)* {2}llama-server-bitnet +NOT AVAILABLE; bitnet-gguf\n +this daemon was started without the BitNet/);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it("gives up on a binary whose --version hangs", async () => {
    const hanging = await writeScript(join(root, "hang", "llama-server"), "exec sleep 30");
    const report = await doctorReport({
      env: { TABAGENT_LLAMA_SERVER: hanging },
      cacheDir: join(root, "cache"),
      pathDirs: [],
      probeNodeLlamaCpp: false,
      timeoutMs: 300,
    });
    expect(report.llamaServer.standard.path).toBe(hanging);
    expect(report.llamaServer.standard.versionError).toMatch(/within 300 ms/);
    expect(formatDoctorReport(report)).toMatch(/version\s+FAILED/);
  });

  it("loads node-llama-cpp's prebuilt CPU binary and probes the GPU without building anything", async () => {
    const report = await doctorReport({ env: {}, cacheDir: join(root, "cache"), pathDirs: [], timeoutMs: 30_000 });
    expect(report.nodeLlamaCpp.cpu).toMatchObject({ ok: true, value: { buildType: "prebuilt" } });
    expect(report.nodeLlamaCpp.gpu?.ok).toBe(true);
    expect(formatDoctorReport(report)).toMatch(/cpu binary\s+loads \(prebuilt/);
  });

  it("reports the transformers sidecar's Python: the packages it imports, or the setup command", async () => {
    const python = await pythonExecutable();
    const base = { cacheDir: join(root, "cache"), pathDirs: [], probeNodeLlamaCpp: false };
    const found = await doctorReport({ ...base, env: { TABAGENT_PYTHON: python } });
    expect(found.python).toMatchObject({ path: python, source: "env", help: null });
    expect(found.python.probe?.value).toMatchObject({ torch: expect.stringMatching(/^2\./), transformers: expect.stringMatching(/^\d+\./) });
    expect(formatDoctorReport(found)).toMatch(/python \(sidecar\) +\S+ \(from env\)\n +packages +torch 2\./);
    const missing = await doctorReport({ ...base, env: {}, dataDir: join(root, "no-data") });
    expect(missing.python.path).toBeNull();
    expect(formatDoctorReport(missing)).toMatch(/python \(sidecar\) +NOT FOUND[^]*tabagent setup python/);
  }, 30_000);
});

describe("doctorReport: RAM, GPUs and which engines can use them", () => {
  it("lists nvidia-smi's GPUs and says per engine whether it can use them; ONNX's CUDA 12 libraries are reported precisely", async () => {
    const smi = await writeScript(
      join(root, "gpu", "nvidia-smi"),
      `case "$1" in --query-gpu=*) echo '0, NVIDIA H200, 143771, 140000, 580.65.06' ;; *) echo 'Driver Version: 580.65.06   CUDA Version: 13.0' ;; esac`,
    );
    const standard = await fakeLlamaServer(join(root, "gpu", "bin", "llama-server"), "gpu-test");
    const report = await doctorReport({
      env: { TABAGENT_LLAMA_SERVER: standard },
      cacheDir: join(root, "cache"),
      pathDirs: [],
      probeNodeLlamaCpp: false,
      nvidiaSmi: smi,
      cuda12SystemDirs: [],
      cuda12PythonPrefixes: [],
    });
    expect(report.ram.totalBytes).toBeGreaterThan(report.ram.freeBytes);
    expect(report.gpus).toEqual({
      gpus: [{ index: 0, name: "NVIDIA H200", vramTotalBytes: 143771 * 1024 ** 2, vramFreeBytes: 140000 * 1024 ** 2, driver: "580.65.06" }],
      cuda: "13.0",
      error: null,
      source: "nvidia-smi",
    });
    const gpu = (name: string) => report.engines.find((e) => e.name === name)!.gpu;
    expect(gpu("llama-server")).toEqual({ usable: false, reason: expect.stringMatching(/CPU build: rebuild with native\/build-llama-server\.sh/) });
    expect(gpu("onnxruntime").usable).toBe(false);
    expect(report.onnxCuda.cuda12.missing).toEqual(["libcudart.so.12", "libcublasLt.so.12", "libcublas.so.12", "libcufft.so.11", "libcurand.so.10", "libcudnn.so.9"]);
    expect(gpu("node-llama-cpp")).toEqual({ usable: false, reason: "not probed" });
    const text = formatDoctorReport(report);
    expect(text).toMatch(/gpu 0\s+NVIDIA H200, 140\.4 GiB VRAM, 136\.7 GiB free; driver 580\.65\.06, CUDA 13\.0/);
    expect(text).toMatch(/llama-server +ready; gguf\n +GPU: no \(a CPU build/);

    const none = await doctorReport({ env: { TABAGENT_FAKE_GPUS: JSON.stringify({ gpus: [] }) }, pathDirs: [], probeNodeLlamaCpp: false, cuda12SystemDirs: [] });
    expect(none.gpus.gpus).toEqual([]);
    expect(formatDoctorReport(none)).toMatch(/gpus\s+none \(none reported\)/);
  });
});
