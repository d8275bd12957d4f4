import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseExecutionProviders } from "../../src/backends/onnx/chooseExecutionProviders.js";
import { CUDA12_LIBRARIES, findCuda12Libraries, preloadCuda12Libraries } from "../../src/native/findCuda12Libraries.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tabagent-cuda12-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A venv prefix with nvidia-*-cu12 wheels' layout (site-packages/nvidia/<part>/lib/<soname>), empty files. */
async function fakeWheels(prefix: string, sonames: readonly string[]): Promise<void> {
  const part: Record<string, string> = { "libcudart.so.12": "cuda_runtime", "libcufft.so.11": "cufft", "libcurand.so.10": "curand", "libcudnn.so.9": "cudnn" };
  for (const soname of sonames) {
    const dir = join(prefix, "lib", "python3.12", "site-packages", "nvidia", part[soname] ?? "cublas", "lib");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, soname), "");
  }
  if (sonames.includes("libcudnn.so.9")) {
    await writeFile(join(prefix, "lib", "python3.12", "site-packages", "nvidia", "cudnn", "lib", "libcudnn_ops.so.9"), "");
  }
}

const onlyCuda = [{ name: "cuda", bundled: false }];

describe("findCuda12Libraries", () => {
  it("finds every library in nvidia-*-cu12 wheels of a venv, and preloads them with cuDNN's sub-libraries", async () => {
    const venv = join(root, "venv-full");
    await fakeWheels(venv, CUDA12_LIBRARIES);
    const lookup = findCuda12Libraries({ env: {}, pythonPrefixes: [venv], systemDirs: [] });
    expect(lookup.ok).toBe(true);
    expect(lookup.missing).toEqual([]);
    expect(lookup.found["libcublasLt.so.12"]).toBe(join(venv, "lib/python3.12/site-packages/nvidia/cublas/lib/libcublasLt.so.12"));
    expect(lookup.reason).toMatch(/^CUDA 12 libraries found \(/);
    const loaded: string[] = [];
    expect(preloadCuda12Libraries(lookup, (p) => loaded.push(p))).toEqual([]);
    expect(loaded.map((p) => p.slice(p.lastIndexOf("/") + 1))).toEqual([...CUDA12_LIBRARIES, "libcudnn_ops.so.9"]);
    // Empty files are no libraries: the real loader says so, per file.
    expect(preloadCuda12Libraries(lookup)[0]).toMatch(/libcudart\.so\.12: .*(file too short|invalid ELF|not a dynamic)/i);
    expect(
      chooseExecutionProviders(
        ["cuda"],
        undefined,
        onlyCuda,
        () => true,
        () => lookup,
      ),
    ).toEqual({ providers: ["cuda", "cpu"], deviceId: null, notes: [] });
  });

  it("names what is missing and where it looked; the CUDA provider is dropped with that reason, even under auto", async () => {
    const venv = join(root, "venv-part");
    await fakeWheels(venv, ["libcudart.so.12", "libcublas.so.12"]);
    const extra = join(root, "extra");
    await mkdir(extra, { recursive: true });
    await writeFile(join(extra, "libcurand.so.10"), "");
    const lookup = findCuda12Libraries({ env: { TABAGENT_CUDA12_LIBS: extra, LD_LIBRARY_PATH: "/nonexistent" }, pythonPrefixes: [venv], systemDirs: [] });
    expect(lookup.ok).toBe(false);
    expect(lookup.missing).toEqual(["libcublasLt.so.12", "libcufft.so.11", "libcudnn.so.9"]);
    expect(lookup.found["libcurand.so.10"]).toBe(join(extra, "libcurand.so.10"));
    expect(lookup.searched.slice(0, 2)).toEqual([extra, "/nonexistent"]);
    expect(lookup.reason).toMatch(/missing libcublasLt\.so\.12, libcufft\.so\.11, libcudnn\.so\.9 .*pip install nvidia-cuda-runtime-cu12 .*TABAGENT_CUDA12_LIBS/);
    for (const device of [undefined, "auto"]) {
      const choice = chooseExecutionProviders(
        ["cuda"],
        device,
        onlyCuda,
        () => true,
        () => lookup,
      );
      expect(choice.providers).toEqual(["cpu"]);
      expect(choice.notes).toEqual([`the cuda execution provider cannot start: ${lookup.reason}`]);
    }
    // A provider that is not installed says that first; the libraries are not even looked up.
    let looked = false;
    const uninstalled = chooseExecutionProviders(
      ["cuda"],
      undefined,
      onlyCuda,
      () => false,
      () => ((looked = true), lookup),
    );
    expect(uninstalled.notes[0]).toMatch(/not installed/);
    expect(looked).toBe(false);
  });
});
