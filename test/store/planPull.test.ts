import { describe, expect, it, vi } from "vitest";
import { detectionSchema, type Detection, type ModelFile } from "../../src/core/detectionSchema.js";
import { DownloadError, InvalidPullSourceError, UnsafePathError } from "../../src/store/errors.js";
import { planPull, type HubListedFile } from "../../src/store/planPull.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

const sha256 = (n: number) => n.toString(16).padStart(64, "0");
const sha1 = (n: number) => n.toString(16).padStart(40, "0");
/** A weights file stored in LFS, and a small plain git file. */
const lfs = (path: string, n: number, size = 1000): HubListedFile => ({ path, size: 130, oid: sha1(n), lfs: { oid: sha256(n), size } });
const plain = (path: string, n: number, size = 10): HubListedFile => ({ path, size, oid: sha1(n) });

/** A detection of any format: the details given (none by default) must fit the format's schema. */
function detection(overrides: Partial<Detection>): Detection {
  return detectionSchema.parse({ ...testDescriptor().detection, details: {}, ...overrides });
}
const file = (path: string, role: ModelFile["role"]): ModelFile => ({ path, size: 1, role });

const noDetect = () => Promise.reject(new Error("detect must not be called"));

describe("planPull: GGUF repos", () => {
  it("takes one quantisation, named by its LFS sha256, without reading headers", async () => {
    const detect = vi.fn(noDetect);
    const plan = await planPull({
      listing: [plain(".gitattributes", 1), plain("README.md", 2), lfs("m-Q8_0.gguf", 3, 800), lfs("m-Q4_K_M.gguf", 4, 500)],
      wanted: null,
      repoLabel: "acme/m",
      detect,
    });
    expect(detect).not.toHaveBeenCalled();
    expect(plan).toEqual({
      format: "gguf",
      mainFile: "m-Q4_K_M.gguf",
      quant: "Q4_K_M",
      files: [{ path: "m-Q4_K_M.gguf", size: 500, etag: sha256(4), digest: { algorithm: "sha256", hex: sha256(4) } }],
    });
  });

  it("a named non-GGUF file is fetched alone; a plain file is named by its git sha1", async () => {
    const plan = await planPull({ listing: [lfs("m-Q4_K_M.gguf", 1), plain("params.json", 2, 42)], wanted: "params.json", repoLabel: "r", detect: noDetect });
    expect(plan).toEqual({
      format: "file",
      mainFile: "params.json",
      quant: null,
      files: [{ path: "params.json", size: 42, etag: sha1(2), digest: { algorithm: "git-sha1", hex: sha1(2) } }],
    });
  });

  it("a wish in a repo without GGUF files is refused by name", async () => {
    await expect(planPull({ listing: [lfs("model.safetensors", 1)], wanted: "Q4_K_M", repoLabel: "acme/st", detect: noDetect })).rejects.toThrow(
      new InvalidPullSourceError("acme/st has no file 'Q4_K_M'"),
    );
  });
});

describe("planPull: refusals of what the hub lists", () => {
  it("one name that could leave the snapshot refuses the whole repo, even when it would not be fetched", async () => {
    for (const bad of ["../../.bashrc", "/etc/cron.d/x", "C:\\x.gguf", "a//b.gguf", "a/./b.gguf"]) {
      await expect(planPull({ listing: [lfs("m-Q4_K_M.gguf", 1), plain(bad, 2)], wanted: null, repoLabel: "evil/r", detect: noDetect })).rejects.toBeInstanceOf(
        UnsafePathError,
      );
    }
  });

  it("a hash that is not a hash is refused as a file name; a plain file without one is refused as unverifiable", async () => {
    const badLfs: HubListedFile = { path: "m-Q4_K_M.gguf", size: 1, lfs: { oid: "../../../outside", size: 1 } };
    await expect(planPull({ listing: [badLfs], wanted: null, repoLabel: "r", detect: noDetect })).rejects.toBeInstanceOf(UnsafePathError);
    const badOid: HubListedFile = { path: "m-Q4_K_M.gguf", size: 1, oid: sha256(1) }; // 64 digits: not a git sha1
    await expect(planPull({ listing: [badOid], wanted: null, repoLabel: "r", detect: noDetect })).rejects.toBeInstanceOf(UnsafePathError);
    const noOid: HubListedFile = { path: "m-Q4_K_M.gguf", size: 1 };
    await expect(planPull({ listing: [noOid], wanted: null, repoLabel: "r", detect: noDetect })).rejects.toBeInstanceOf(DownloadError);
  });
});

describe("planPull: repos that detection reads", () => {
  it("SafeTensors: the files detection names, without model cards, pictures or unlisted files", async () => {
    const listing = [plain("config.json", 1), plain("tokenizer.json", 2), lfs("model.safetensors", 3, 4000), plain("README.md", 4), lfs("assets/chart.png", 5)];
    const detect = vi.fn(async () => [
      detection({
        format: "safetensors",
        quantization: "BF16",
        files: [
          file("config.json", "config"),
          file("tokenizer.json", "tokenizer"),
          file("model.safetensors", "weights"),
          file("README.md", "other"),
          file("assets/chart.png", "other"),
          file("missing.bin", "other"),
        ],
      }),
    ]);
    const plan = await planPull({ listing, wanted: null, repoLabel: "r", detect });
    expect(detect).toHaveBeenCalledOnce();
    expect(plan.format).toBe("safetensors");
    expect(plan.mainFile).toBeNull();
    expect(plan.quant).toBe("BF16");
    expect(plan.files.map((f) => [f.path, f.size])).toEqual([
      ["config.json", 10],
      ["tokenizer.json", 10],
      ["model.safetensors", 4000],
    ]);
  });

  it("a repo with both GGUF and SafeTensors files is read by detection unless a GGUF is asked for", async () => {
    const listing = [lfs("m-Q4_K_M.gguf", 1), plain("config.json", 2), lfs("model.safetensors", 3)];
    const detect = vi.fn(async () => [detection({ format: "safetensors", files: [file("config.json", "config"), file("model.safetensors", "weights")] })]);
    expect((await planPull({ listing, wanted: null, repoLabel: "r", detect })).format).toBe("safetensors");
    expect((await planPull({ listing, wanted: "Q4_K_M", repoLabel: "r", detect })).format).toBe("gguf");
    expect(detect).toHaveBeenCalledOnce();
  });

  it("ONNX: one precision, with its own external data only, and no GGUF files", async () => {
    const names = ["config.json", "onnx/model.onnx", "onnx/model.onnx_data", "onnx/model_fp16.onnx", "onnx/model_fp16.onnx_data", "m-Q4_K_M.gguf"];
    const listing = names.map((n, i) => lfs(n, i + 1));
    const detect = async () => [
      detection({
        format: "onnx",
        files: names.map((n) => file(n, n.endsWith("data") ? "external-data" : n.endsWith(".json") ? "config" : "weights")),
        details: {
          variants: [{ path: "onnx/model_fp16.onnx", component: "model", quantization: "fp16", size: 1 }],
          externalData: [
            { location: "model.onnx_data", tensors: 1, bytes: null, path: "onnx/model.onnx_data", exists: true, safe: true },
            { location: "../outside.onnx_data", tensors: 1, bytes: null, path: null, exists: false, safe: false },
          ],
        },
      }),
    ];
    const plan = await planPull({ listing, wanted: null, repoLabel: "r", detect });
    expect(plan.files.map((f) => f.path)).toEqual(["config.json", "onnx/model.onnx", "onnx/model.onnx_data"]);
  });

  it("refuses a repo where detection finds no model, or no file to fetch", async () => {
    const listing = [plain("config.json", 1)];
    await expect(planPull({ listing, wanted: null, repoLabel: "acme/x", detect: async () => [] })).rejects.toThrow(/acme\/x: no model found \(empty repo\)/);
    await expect(
      planPull({ listing, wanted: null, repoLabel: "acme/x", detect: async () => [detection({ format: "unknown", reason: "nothing known" })] }),
    ).rejects.toThrow(/no model found \(nothing known\)/);
    await expect(
      planPull({
        listing,
        wanted: null,
        repoLabel: "acme/x",
        detect: async () => [detection({ format: "safetensors", files: [file("elsewhere.safetensors", "weights")] })],
      }),
    ).rejects.toThrow(/detection found no files to fetch/);
  });
});
