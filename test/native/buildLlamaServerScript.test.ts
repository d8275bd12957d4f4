import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeScript } from "./fakeExecutable.js";

// native/build-llama-server.sh, exercised with a fake cmake: argument parsing, cache keys, the cache hit, the
// atomic finish and the lock. The real 10-minute build is checked by hand (see docs/native.md).
const SCRIPT = resolve("native/build-llama-server.sh");

let root: string;
let fakeCmake: string;
let source: string;
let bitnetSource: string;
/** BitNet builds only with clang: stand-ins, so these tests do not need one installed. */
let clang: { CC: string; CXX: string };
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tabagent-build-"));
  // Logs every call; on --build it "compiles" a llama-server into <build>/bin, optionally slowly or failing.
  fakeCmake = await writeScript(
    join(root, "tools", "cmake"),
    [
      'echo "$*" >> "$FAKE_CMAKE_LOG"',
      'if [ "$1" = "--build" ]; then',
      '  [ -z "${FAKE_CMAKE_SLEEP:-}" ] || sleep "$FAKE_CMAKE_SLEEP"',
      '  [ -z "${FAKE_CMAKE_FAIL:-}" ] || exit 1',
      '  mkdir -p "$2/bin"',
      `  printf '#!/bin/sh\\necho "version: 1 (fake)" >&2\\n' > "$2/bin/llama-server"`,
      '  chmod +x "$2/bin/llama-server"',
      `  printf '#!/bin/sh\\nexit 0\\n' > "$2/bin/llama-quantize"`,
      '  chmod +x "$2/bin/llama-quantize"',
      "fi",
      "exit 0",
    ].join("\n"),
  );
  source = join(root, "llama.cpp");
  await mkdir(source);
  await writeFile(join(source, "CMakeLists.txt"), "project(fake)\n");
  // A BitNet tree: its CMakeLists, the llama.cpp fork, and a kernel generator that records its arguments.
  bitnetSource = join(root, "BitNet");
  await mkdir(join(bitnetSource, "3rdparty", "llama.cpp"), { recursive: true });
  await mkdir(join(bitnetSource, "utils"));
  await mkdir(join(bitnetSource, "include"));
  await writeFile(join(bitnetSource, "CMakeLists.txt"), "project(bitnet)\n");
  await writeFile(join(bitnetSource, "3rdparty", "llama.cpp", "CMakeLists.txt"), "project(fork)\n");
  const codegen = 'import os, sys\nopen(os.path.join("include", "kernel_config.ini"), "w").write(" ".join(sys.argv[1:]) + "\\n")\n';
  await writeFile(join(bitnetSource, "utils", "codegen_tl2.py"), codegen);
  await writeFile(join(bitnetSource, "utils", "codegen_tl1.py"), codegen);
  clang = {
    CC: await writeScript(join(root, "tools", "clang"), 'echo "fake clang version 18.1.0"'),
    CXX: await writeScript(join(root, "tools", "clang++"), 'echo "fake clang version 18.1.0"'),
  };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface RunOptions {
  env?: Record<string, string>;
  cacheDir?: string;
}
async function run(args: string[], opts: RunOptions = {}) {
  const log = join(root, `cmake-${Math.random().toString(36).slice(2)}.log`);
  const result = await execa("bash", [SCRIPT, "--cache-dir", opts.cacheDir ?? join(root, "cache"), ...args], {
    reject: false,
    stdin: "ignore",
    env: { CMAKE: fakeCmake, FAKE_CMAKE_LOG: log, CI: "true", ...opts.env },
  });
  const cmakeCalls = existsSync(log) ? (await readFile(log, "utf8")).trim().split("\n") : [];
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr, cmakeCalls };
}

/** --dry-run's key=value lines (flag repeats). */
async function dryRun(args: string[], opts: RunOptions = {}) {
  const r = await run(["--dry-run", ...args], opts);
  expect(r.stderr).not.toMatch(/error/);
  expect(r.code).toBe(0);
  const fields: Record<string, string> = {};
  const flags: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const at = line.indexOf("=");
    const [name, value] = [line.slice(0, at), line.slice(at + 1)];
    if (name === "flag") flags.push(value);
    else fields[name] = value;
  }
  return { ...fields, flags, cmakeCalls: r.cmakeCalls } as Record<string, string> & { flags: string[]; cmakeCalls: string[] };
}

describe("build-llama-server.sh", () => {
  it("by default builds the llama.cpp bundled in node-llama-cpp with the required flags", async () => {
    const d = await dryRun([]);
    expect(d.key).toMatch(/^standard-[0-9a-f]{20}$/);
    expect(d["source-kind"]).toBe("bundle");
    expect(d.source).toMatch(/node-llama-cpp\/llama\/gitRelease\.bundle$/);
    expect(d.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(d["release-tag"]).toMatch(/^v\d/);
    expect(d.path).toBe(join(root, "cache", d.key!, "bin", "llama-server"));
    expect(d.flags).toEqual(
      expect.arrayContaining(["-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=OFF"]),
    );
    expect(d.configure).toMatch(/ -G Ninja /);
    expect(d.build).toMatch(/--build \S+ --target llama-server -j \d+$/);
    expect(d.cmakeCalls).toEqual([]);
  });

  it("keys the cache on revision, variant, flags and compiler, and on nothing else", async () => {
    const base = await dryRun(["--source", source]);
    expect(base["source-kind"]).toBe("folder");
    expect(base.revision).toMatch(/^content-[0-9a-f]{64}$/);
    // Stable: same inputs, another job count, flags in another order or repeated.
    expect((await dryRun(["--source", source, "--jobs", "7"])).key).toBe(base.key);
    const cuda = await dryRun(["--source", source, "--cmake-flag", "-DGGML_CUDA=ON", "--cmake-flag=-DGGML_VULKAN=OFF"]);
    expect(cuda.key).not.toBe(base.key);
    expect(cuda.flags).toContain("-DGGML_CUDA=ON");
    expect((await dryRun(["--source", source, "--cmake-flag", "-DGGML_VULKAN=OFF", "--cmake-flag", "-DGGML_CUDA=ON"])).key).toBe(cuda.key);
    expect((await dryRun(["--source", source, "--cmake-flag", "-DGGML_CUDA=OFF", "--cmake-flag", "-DGGML_CUDA=ON", "--cmake-flag=-DGGML_VULKAN=OFF"])).key).toBe(
      cuda.key,
    );
    // A flag given by the caller replaces the default for the same variable.
    const native = await dryRun(["--source", source, "--cmake-flag", "-DGGML_NATIVE=ON"]);
    expect(native.flags).toContain("-DGGML_NATIVE=ON");
    expect(native.flags).not.toContain("-DGGML_NATIVE=OFF");
    expect(native.key).not.toBe(base.key);

    const bitnet = await dryRun(["--source", bitnetSource, "--variant", "bitnet"], { env: clang });
    expect(bitnet.key).toMatch(/^bitnet-/);
    const bitnetBase = await dryRun(["--source", bitnetSource]);
    expect(bitnet.key!.slice("bitnet-".length)).not.toBe(bitnetBase.key!.slice("standard-".length));

    const compiler = await writeScript(join(root, "tools", "c++"), 'echo "fake c++ 99.0"');
    expect((await dryRun(["--source", source], { env: { CXX: compiler } })).key).not.toBe(base.key);

    // The content of a folder without git is its revision.
    const copy = join(root, "llama.cpp-edited");
    await mkdir(copy);
    await writeFile(join(copy, "CMakeLists.txt"), "project(fake)\n");
    expect((await dryRun(["--source", copy])).revision).toBe(base.revision);
    await writeFile(join(copy, "ggml.c"), "int x;\n");
    expect((await dryRun(["--source", copy])).key).not.toBe(base.key);
  });

  it("bitnet: BitNet's tarball by default, kernel generation for the host, llama-server and llama-quantize", async () => {
    const missing = await run(["--dry-run", "--variant", "bitnet"], { env: { ...clang, TABAGENT_BITNET_SOURCE: join(root, "BitNet-test.tar.xz") } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no BitNet source: .*BitNet-test\.tar\.xz is missing.*--source DIR/);

    const tarball = join(root, "BitNet-test.tar.xz");
    await execa("tar", ["-cJf", tarball, "-C", root, "BitNet"]);
    const t = await dryRun(["--variant", "bitnet"], { env: { ...clang, TABAGENT_BITNET_SOURCE: tarball } });
    expect(t.key).toMatch(/^bitnet-[0-9a-f]{20}$/);
    expect(t["source-kind"]).toBe("tarball");
    expect(t.source).toBe(tarball);
    expect(t.revision).toMatch(/^tarball-[0-9a-f]{64}$/);
    expect(t.build).toMatch(/--target llama-server llama-quantize -j \d+$/);
    expect(t.flags).toEqual(expect.arrayContaining(["-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_EXAMPLES=ON"]));
    const x86 = process.arch === "x64";
    expect(t["bitnet-kernels"]).toBe("bitnet_b1_58-large");
    expect(t.flags).toContain(x86 ? "-DBITNET_X86_TL2=ON" : "-DBITNET_ARM_TL1=ON");
    if (x86) expect(t.flags).toEqual(expect.arrayContaining(["-DGGML_AVX2=ON", "-DGGML_NATIVE=OFF"]));
    expect(t["compiler-cxx"]).toBe("fake clang version 18.1.0");
    // BitNet's CMakeLists refuses every compiler but clang: without one, say so before configuring.
    const noClang = await run(["--dry-run", "--variant", "bitnet"], { env: { CC: join(root, "missing", "clang"), CXX: clang.CXX, TABAGENT_BITNET_SOURCE: tarball } });
    expect(noClang.code).toBe(3);
    expect(noClang.stderr).toMatch(/C compiler not found .*BitNet builds only with clang: install it/);
    expect(t.codegen).toMatch(x86 ? /codegen_tl2\.py --model bitnet_b1_58-large --BM 256,128,256 --BK 96,192,96 --bm 32,32,32$/ : /codegen_tl1\.py/);

    // I2_S only: no generated kernels, no TL flag, another key.
    const none = await dryRun(["--variant", "bitnet", "--bitnet-kernels", "none"], { env: { ...clang, TABAGENT_BITNET_SOURCE: tarball } });
    expect(none.flags.filter((f) => f.startsWith("-DBITNET_"))).toEqual([]);
    expect(none.codegen).toBeUndefined();
    expect(none.key).not.toBe(t.key);

    for (const [args, message] of [
      [["--variant", "bitnet", "--bitnet-kernels", "llama-70b"], /--bitnet-kernels must be/],
      [["--bitnet-kernels", "none"], /only for --variant bitnet/],
      [["--variant", "bitnet", "--source", source], /is not a BitNet checkout/],
    ] as const) {
      const r = await run(["--dry-run", ...args], { env: { ...clang, TABAGENT_BITNET_SOURCE: tarball } });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it("bitnet: generates the kernels in a private copy, builds both tools, and ships them with the kernel config", async () => {
    const cacheDir = join(root, "bitnet-full");
    const r = await run(["--variant", "bitnet", "--source", bitnetSource, "--print-path"], { cacheDir, env: clang });
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const key = (await readdir(cacheDir)).find((name) => name.startsWith("bitnet-"))!;
    expect(r.stdout).toBe(join(cacheDir, key, "bin", "llama-server"));
    expect(r.cmakeCalls[0]).toMatch(new RegExp(`^-S ${cacheDir}/\\.tmp/build\\.\\w+/src -B `));
    expect(r.cmakeCalls[1]).toMatch(/^--build \S+ --target llama-server llama-quantize -j \d+$/);
    for (const name of ["llama-server-bitnet", "llama-quantize"]) expect((await stat(join(cacheDir, key, "bin", name))).isFile()).toBe(true);
    if (process.arch === "x64") {
      expect(await readFile(join(cacheDir, key, "kernel_config.ini"), "utf8")).toBe("--model bitnet_b1_58-large --BM 256,128,256 --BK 96,192,96 --bm 32,32,32\n");
    }
    // The caller's checkout is left as it was.
    expect(existsSync(join(bitnetSource, "include", "kernel_config.ini"))).toBe(false);
    const info = JSON.parse(await readFile(join(cacheDir, key, "build-info.json"), "utf8"));
    expect(info).toMatchObject({ variant: "bitnet", bitnetKernels: "bitnet_b1_58-large", source: { kind: "folder", path: bitnetSource } });
  });

  it("takes the revision from git: HEAD, --git-ref, and uncommitted edits", async () => {
    const repo = join(root, "repo");
    await mkdir(repo);
    const git = (...args: string[]) => execa("git", ["-c", "user.email=t@t", "-c", "user.name=t", ...args], { cwd: repo });
    await git("init", "-q");
    await writeFile(join(repo, "CMakeLists.txt"), "project(one)\n");
    await git("add", ".");
    await git("commit", "-qm", "one");
    await git("tag", "v1");
    const first = (await git("rev-parse", "HEAD")).stdout;
    await writeFile(join(repo, "CMakeLists.txt"), "project(two)\n");
    await git("commit", "-qam", "two");
    const second = (await git("rev-parse", "HEAD")).stdout;

    const head = await dryRun(["--source", repo]);
    expect(head).toMatchObject({ "source-kind": "git-checkout", revision: second });
    const tagged = await dryRun(["--source", repo, "--git-ref", "v1"]);
    expect(tagged).toMatchObject({ "source-kind": "git-ref", revision: first });
    expect(tagged.key).not.toBe(head.key);
    expect((await dryRun(["--source", repo, "--git-ref", first])).key).toBe(tagged.key);

    await writeFile(join(repo, "generated.h"), "// codegen output\n");
    const dirty = await dryRun(["--source", repo]);
    expect(dirty.revision).toMatch(new RegExp(`^${second}-dirty-[0-9a-f]{16}$`));
    expect(dirty.key).not.toBe(head.key);

    const bad = await run(["--dry-run", "--source", repo, "--git-ref", "no-such-tag"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--git-ref 'no-such-tag' is not a commit/);
  });

  it.each([
    [["--variant", "turbo"], /--variant must be 'standard' or 'bitnet'/],
    [["--jobs", "0"], /--jobs must be a positive integer/],
    [["--cmake-flag"], /--cmake-flag needs a value/],
    [["--cmake-flag", "-GMake"], /chosen by this script/],
    [["--frobnicate"], /unknown argument '--frobnicate'/],
    [["--source", "/no/such/dir"], /is not a folder/],
  ])("refuses bad arguments with exit 2: %j", async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.cmakeCalls).toEqual([]);
  });

  it("says clearly which tool is missing (exit 3)", async () => {
    const noCmake = await run(["--source", source], { env: { CMAKE: join(root, "missing", "cmake") } });
    expect(noCmake.code).toBe(3);
    expect(noCmake.stderr).toMatch(/cmake not found .*Install cmake/);
    const noNinja = await run(["--source", source], { env: { NINJA: join(root, "missing", "ninja") } });
    expect(noNinja.code).toBe(3);
    expect(noNinja.stderr).toMatch(/ninja not found/);
    const noCompiler = await run(["--source", source], { env: { CXX: join(root, "missing", "c++") } });
    expect(noCompiler.code).toBe(3);
    expect(noCompiler.stderr).toMatch(/C\+\+ compiler not found/);
  });

  it("returns an existing complete build at once without running cmake", async () => {
    const cacheDir = join(root, "prefilled");
    const { key, path } = await dryRun(["--source", source], { cacheDir });
    await writeScript(path!, "exit 0");
    await writeFile(join(cacheDir, key!, "build-info.json"), "{}\n");
    const started = performance.now();
    const r = await run(["--source", source, "--print-path"], { cacheDir, env: { FAKE_CMAKE_FAIL: "1" } });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(path);
    expect(r.cmakeCalls).toEqual([]);
  });

  it("builds in a temp folder, writes build-info.json, then moves the result into place", async () => {
    const cacheDir = join(root, "full");
    const r = await run(["--source", source, "--print-path", "--jobs", "3", "--cmake-flag", "-DGGML_VULKAN=ON"], { cacheDir });
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const key = (await readdir(cacheDir)).find((name) => name.startsWith("standard-"))!;
    expect(r.stdout).toBe(join(cacheDir, key, "bin", "llama-server"));
    expect(r.cmakeCalls).toHaveLength(2);
    expect(r.cmakeCalls[0]).toMatch(new RegExp(`^-S ${source} -B ${cacheDir}/\\.tmp/build\\.\\w+/build -G Ninja .*-DGGML_VULKAN=ON`));
    expect(r.cmakeCalls[1]).toMatch(/^--build \S+ --target llama-server -j 3$/);

    const info = JSON.parse(await readFile(join(cacheDir, key, "build-info.json"), "utf8"));
    expect(info).toMatchObject({ key, variant: "standard", source: { kind: "folder", path: source }, binary: "bin/llama-server", versionOutput: "version: 1 (fake)" });
    expect(info.cmakeFlags).toContain("-DGGML_VULKAN=ON");
    expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(info.date)).not.toBeNaN();
    expect(info.compiler.cxx).not.toBe("");
    // The variant's name sits next to the binary, as the release folders use it.
    expect((await stat(join(cacheDir, key, "bin", "llama-server-standard"))).ino).toBe((await stat(r.stdout)).ino);
    expect(await readdir(join(cacheDir, ".tmp"))).toEqual([]);

    const again = await run(["--source", source, "--print-path", "--cmake-flag", "-DGGML_VULKAN=ON"], { cacheDir });
    expect(again).toMatchObject({ code: 0, stdout: r.stdout, cmakeCalls: [] });
  });

  it("leaves nothing that looks complete when the build fails", async () => {
    const cacheDir = join(root, "failing");
    const r = await run(["--source", source], { cacheDir, env: { FAKE_CMAKE_FAIL: "1" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the llama-server build failed/);
    expect((await readdir(cacheDir)).filter((name) => !name.startsWith("."))).toEqual([]);
    expect(await readdir(join(cacheDir, ".tmp"))).toEqual([]);
  });

  it("lets only one of two concurrent builds of the same key run cmake", async () => {
    const cacheDir = join(root, "concurrent");
    const env = { FAKE_CMAKE_SLEEP: "1" };
    const [a, b] = await Promise.all([run(["--source", source, "--print-path"], { cacheDir, env }), run(["--source", source, "--print-path"], { cacheDir, env })]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.cmakeCalls.length + b.cmakeCalls.length).toBe(2);
    expect(`${a.stderr}\n${b.stderr}`).toMatch(/another process finished/);
  });
});
