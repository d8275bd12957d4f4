import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCudaVersion, parseNvidiaSmiCsv, queryGpus } from "../../src/native/queryGpus.js";
import { writeScript } from "./fakeExecutable.js";

const MIB = 1024 * 1024;
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tabagent-gpus-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A stand-in nvidia-smi: the csv for --query-gpu, the banner otherwise (what the real one prints). */
function fakeSmi(path: string, csv: string): Promise<string> {
  return writeScript(
    path,
    `case "$1" in --query-gpu=*) printf '%s\\n' '${csv}' ;; *) echo '| NVIDIA-SMI 580.65.06   Driver Version: 580.65.06   CUDA Version: 13.0 |' ;; esac`,
  );
}

describe("queryGpus", () => {
  it("reads name, VRAM total/free, driver and CUDA from nvidia-smi", async () => {
    const smi = await fakeSmi(join(root, "smi-one"), "0, NVIDIA H100 80GB HBM3, 81559, 80000, 580.65.06");
    const report = await queryGpus({ env: {}, nvidiaSmi: smi });
    expect(report).toEqual({
      gpus: [{ index: 0, name: "NVIDIA H100 80GB HBM3", vramTotalBytes: 81559 * MIB, vramFreeBytes: 80000 * MIB, driver: "580.65.06" }],
      cuda: "13.0",
      error: null,
      source: "nvidia-smi",
    });
  });

  it("says why there is no list: no nvidia-smi, a failing one, unreadable memory", async () => {
    const missing = await queryGpus({ env: {}, nvidiaSmi: join(root, "nope", "nvidia-smi") });
    expect(missing).toMatchObject({ gpus: [], error: expect.stringMatching(/not installed/) });
    const failing = await writeScript(join(root, "smi-fail"), "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9");
    expect((await queryGpus({ env: {}, nvidiaSmi: failing })).error).toMatch(/nvidia-smi failed/);
    expect(parseNvidiaSmiCsv("0, GPU, [N/A], [N/A], 580")).toEqual({ error: expect.stringMatching(/no memory figures/) });
    expect(parseNvidiaSmiCsv("garbage")).toEqual({ error: expect.stringMatching(/unexpected line/) });
  });

  it("takes a fake report from TABAGENT_FAKE_GPUS, and refuses a malformed one with a reason", async () => {
    const fake = { gpus: [{ index: 0, name: "Fake 8G", vramTotalBytes: 8 * 1024 * MIB, vramFreeBytes: 6 * 1024 * MIB, driver: "1" }], cuda: "12.4" };
    expect(await queryGpus({ env: { TABAGENT_FAKE_GPUS: JSON.stringify(fake) } })).toEqual({ ...fake, error: null, source: "fake" });
    expect((await queryGpus({ env: { TABAGENT_FAKE_GPUS: "{" } })).error).toMatch(/TABAGENT_FAKE_GPUS/);
  });

  it("parses several GPUs and the CUDA banner", () => {
    const two = parseNvidiaSmiCsv("0, A, 100, 50, 1\n1, B, 200, 150, 1\n");
    expect("gpus" in two && two.gpus.map((g) => g.vramFreeBytes)).toEqual([50 * MIB, 150 * MIB]);
    expect(parseCudaVersion("CUDA Version: 12.8")).toBe("12.8");
    expect(parseCudaVersion("no banner")).toBeNull();
  });
});
