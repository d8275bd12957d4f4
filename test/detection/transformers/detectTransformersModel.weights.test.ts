import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDetectionSchema, transformersDetails, type FormatDetection } from "../../../src/core/detectionSchema.js";
import { LocalModelFileSystem } from "../../../src/detection/ModelFileSystem.js";
import { chooseEngine } from "../../../src/detection/chooseEngine.js";
import { detectTransformersModel } from "../../../src/detection/transformers/detectTransformersModel.js";
import { buildSafetensors, encodeSafetensors } from "../safetensors/writeSafetensors.js";
import { GGUF_BYTES, makeFolder, RAW_PICKLE, recordingFs, TORCH_ZIP, type FolderSpec, type RecordingFs } from "./hfFolder.js";

const LLAMA = { architectures: ["LlamaForCausalLM"], model_type: "llama", torch_dtype: "float16" };
const TOKENIZER = { "tokenizer.json": {} };

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "transformers-weights-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every result fits the shared schema, and parsing its JSON (as the detection cache does) gives the same JSON back. */
function expectCacheRoundTrip(d: FormatDetection): void {
  const json = JSON.stringify(d);
  expect(JSON.stringify(formatDetectionSchema.parse(JSON.parse(json)))).toBe(json);
}

async function detectIn(dir: string): Promise<{ d: FormatDetection | null; fs: RecordingFs }> {
  const fs = recordingFs(await LocalModelFileSystem.create(dir));
  const d = await detectTransformersModel(fs, await fs.list());
  if (d) expectCacheRoundTrip(d);
  return { d, fs };
}

async function detect(files: FolderSpec): Promise<FormatDetection | null> {
  return (await detectIn(await makeFolder(files, root))).d;
}

function shard(name: string, rows: number) {
  return buildSafetensors([{ name, dtype: "BF16", shape: [rows, 8] }]);
}

describe("sharded safetensors", () => {
  it("follows the index to every shard and sums their parameters", async () => {
    const d = await detect({
      "config.json": LLAMA,
      ...TOKENIZER,
      "model.safetensors.index.json": {
        metadata: { total_size: 512 },
        weight_map: {
          "a.weight": "model-00001-of-00002.safetensors",
          "b.weight": "model-00002-of-00002.safetensors",
          "c.weight": "./model-00002-of-00002.safetensors",
        },
      },
      "model-00001-of-00002.safetensors": shard("a.weight", 16),
      "model-00002-of-00002.safetensors": shard("b.weight", 8),
      "consolidated.safetensors": shard("all", 24),
      "pytorch_model.bin": TORCH_ZIP,
    });
    expect(d).toMatchObject({
      format: "safetensors",
      parameterCount: 16 * 8 + 8 * 8,
      quantization: "BF16",
      warnings: [],
      details: { shards: 2, indexTotalSize: 512, tensorCount: 2 },
    });
    expect(d!.reason).toMatch(/; weights: 2 shards from model\.safetensors\.index\.json$/);
    expect(d!.files.filter((f) => f.role === "weights" || f.role === "index").map((f) => [f.path, f.role])).toEqual([
      ["model-00001-of-00002.safetensors", "weights"],
      ["model-00002-of-00002.safetensors", "weights"],
      ["model.safetensors.index.json", "index"],
    ]);
    // Unused alternatives (consolidated.safetensors, the pickle) are not part of the model.
    expect(d!.files.map((f) => f.path)).not.toContain("pytorch_model.bin");
    expect(d!.files.map((f) => f.path)).not.toContain("consolidated.safetensors");
  });

  it("warns about missing shards and never follows names out of the model folder", async () => {
    const parent = await mkdtemp(join(root, "outside-"));
    await writeFile(join(parent, "secret.safetensors"), shard("secret", 4));
    const dir = await makeFolder(
      {
        "config.json": LLAMA,
        ...TOKENIZER,
        "model.safetensors.index.json": {
          weight_map: {
            "a.weight": "model-00001-of-00003.safetensors",
            "b.weight": "model-00002-of-00003.safetensors",
            "c.weight": "../../etc/passwd",
            "d.weight": "../secret.safetensors",
            "e.weight": "/etc/passwd",
            "f.weight": "sub\\..\\..\\x.safetensors",
            "g.weight": "C:/Windows/win.ini",
            "h.weight": 42,
          },
        },
        "model-00001-of-00003.safetensors": shard("a.weight", 4),
      },
      parent,
    );
    const { d, fs } = await detectIn(dir);
    expect(d).toMatchObject({ format: "safetensors", parameterCount: null, details: { shards: 1, missingShards: ["model-00002-of-00003.safetensors"] } });
    expect(transformersDetails(d!)?.unsafeShardNames).toEqual([
      "../../etc/passwd",
      "../secret.safetensors",
      "/etc/passwd",
      "sub\\..\\..\\x.safetensors",
      "C:/Windows/win.ini",
      "42",
    ]);
    expect(d!.warnings).toContain("model.safetensors.index.json names 1 missing shard: model-00002-of-00003.safetensors");
    expect(d!.warnings).toContain('model.safetensors.index.json names shard "../../etc/passwd" outside the model folder; ignored');
    expect(fs.opened).toEqual(["model-00001-of-00003.safetensors"]);
    expect(d!.files.map((f) => f.path)).not.toContain("../secret.safetensors");
  });

  it("falls back to model.safetensors when the index is broken", async () => {
    const d = await detect({
      "config.json": LLAMA,
      ...TOKENIZER,
      "model.safetensors.index.json": "{ truncated",
      "model.safetensors": shard("w", 2),
    });
    expect(d).toMatchObject({ format: "safetensors", parameterCount: 16 });
    expect(d!.warnings).toEqual(["model.safetensors.index.json is not valid JSON; ignored"]);
  });

  it("warns about shard-named files without an index", async () => {
    const d = await detect({
      "config.json": LLAMA,
      ...TOKENIZER,
      "model-00001-of-00002.safetensors": shard("a", 2),
      "model-00002-of-00002.safetensors": shard("b", 2),
    });
    expect(d).toMatchObject({ parameterCount: 32, details: { shards: 2 } });
    expect(d!.warnings).toEqual(["sharded safetensors weights without an index file"]);
  });

  it("does not follow a symlinked shard out of the folder", async () => {
    const parent = await mkdtemp(join(root, "link-"));
    await writeFile(join(parent, "elsewhere.safetensors"), shard("x", 2));
    const dir = await makeFolder({ "config.json": LLAMA, ...TOKENIZER, "model.safetensors.index.json": { weight_map: { x: "model.safetensors" } } }, parent);
    await symlink(join(parent, "elsewhere.safetensors"), join(dir, "model.safetensors"));
    const { d, fs } = await detectIn(dir);
    expect(fs.opened).toEqual([]);
    expect(d).toMatchObject({ format: "unknown", details: { missingShards: ["model.safetensors"] } });
  });
});

describe("invalid safetensors", () => {
  it("reports a bad header as a warning, never as valid weights", async () => {
    const d = await detect({
      "config.json": LLAMA,
      ...TOKENIZER,
      "model.safetensors": encodeSafetensors('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}', 8),
    });
    expect(d).toMatchObject({ format: "safetensors", parameterCount: null, quantization: null });
    expect(d!.warnings).toEqual(['model.safetensors is not a valid safetensors file: tensor "w": F32 [4] needs 16 bytes but data_offsets span 8 bytes']);
    expect(transformersDetails(d!)?.invalidWeights).toEqual([{ path: "model.safetensors", message: expect.any(String), actualFormat: null }]);
  });

  it("says what a renamed file really is", async () => {
    const pickle = await detect({ "config.json": LLAMA, ...TOKENIZER, "model.safetensors": TORCH_ZIP });
    expect(pickle!.warnings[0]).toMatch(/^model\.safetensors is not a valid safetensors file \(its bytes say torch-zip\)/);
    expect(pickle!.details).not.toHaveProperty("unsafePickle");
    const gguf = await detect({ "config.json": LLAMA, ...TOKENIZER, "model.safetensors": GGUF_BYTES });
    expect(gguf!.warnings[0]).toMatch(/its bytes say gguf/);
    const tiny = await detect({ "config.json": LLAMA, ...TOKENIZER, "model.safetensors": "abc" });
    expect(tiny!.warnings[0]).toMatch(/too small/);
  });
});

describe("PyTorch pickle weights", () => {
  it("recognises a torch zip by its magic bytes and chooses no engine for it", async () => {
    const d = await detect({ "config.json": LLAMA, ...TOKENIZER, "pytorch_model.bin": TORCH_ZIP, "training_args.bin": RAW_PICKLE });
    expect(d).toMatchObject({
      format: "pytorch",
      task: "text-generation",
      parameterCount: null,
      quantization: "F16",
      details: { unsafePickle: true, pickleFormats: { "pytorch_model.bin": "torch-zip" }, shards: 1 },
    });
    expect(d!.reason).toMatch(/; weights: pytorch_model\.bin \(pickle\)$/);
    expect(d!.warnings).toEqual([
      "pytorch_model.bin (pickle): pickle weights can execute arbitrary code when loaded, so tabagent does not serve them; convert them to safetensors (transformers: save_pretrained(..., safe_serialization=True)) and serve that folder",
    ]);
    expect(chooseEngine(d!)).toEqual({ engine: null, alternatives: [] });
    expect(d!.files.map((f) => [f.path, f.role])).toEqual([
      ["config.json", "config"],
      ["pytorch_model.bin", "weights"],
      ["tokenizer.json", "tokenizer"],
    ]);
  });

  it("has no opt-in: an allow_pickle in config.json or tabagent.json gets pickle weights no engine, not even a chosen one", async () => {
    const inConfig = await detect({ "config.json": { ...LLAMA, tabagent: { allow_pickle: true } }, ...TOKENIZER, "model.pt": RAW_PICKLE });
    const inFile = await detect({ "config.json": LLAMA, "tabagent.json": { allow_pickle: true }, ...TOKENIZER, "pytorch_model.bin": TORCH_ZIP });
    for (const d of [inConfig!, inFile!]) {
      expect(d).toMatchObject({ format: "pytorch", details: { unsafePickle: true } });
      expect(d.details).not.toHaveProperty("pickleAllowed");
      expect(d.warnings[0]).toMatch(/tabagent does not serve them; convert them to safetensors/);
      expect(chooseEngine(d)).toEqual({ engine: null, alternatives: [] });
      expect(chooseEngine(d, { override: "transformers" })).toEqual({ engine: null, alternatives: [] });
    }
    expect(inConfig!.details).toMatchObject({ pickleFormats: { "model.pt": "pickle" } });
  });

  it("follows a pickle shard index", async () => {
    const d = await detect({
      "config.json": LLAMA,
      ...TOKENIZER,
      "pytorch_model.bin.index.json": {
        weight_map: { a: "pytorch_model-00001-of-00002.bin", b: "pytorch_model-00002-of-00002.bin", c: "../../etc/passwd" },
      },
      "pytorch_model-00001-of-00002.bin": TORCH_ZIP,
      "pytorch_model-00002-of-00002.bin": TORCH_ZIP,
    });
    expect(d).toMatchObject({ format: "pytorch", details: { shards: 2, unsafeShardNames: ["../../etc/passwd"] } });
    expect(d!.files.filter((f) => f.role === "index").map((f) => f.path)).toEqual(["pytorch_model.bin.index.json"]);
  });

  it("prefers safetensors over pickle", async () => {
    const d = await detect({ "config.json": LLAMA, ...TOKENIZER, "model.safetensors": shard("w", 1), "pytorch_model.bin": TORCH_ZIP });
    expect(d).toMatchObject({ format: "safetensors", warnings: [] });
    expect(d!.details).not.toHaveProperty("unsafePickle");
  });

  it("trusts magic bytes over the extension: a GGUF .bin is not pickle", async () => {
    expect(await detect({ "model.bin": GGUF_BYTES })).toBeNull();
    expect(await detect({ "config.json": LLAMA, "pytorch_model.bin": GGUF_BYTES })).toBeNull();
    const dir = await makeFolder({ "ggml-model.bin": GGUF_BYTES, "weights.pkl": RAW_PICKLE, "pickle.data": TORCH_ZIP }, root);
    expect(await detectTransformersModel(...(await single(join(dir, "ggml-model.bin"))))).toBeNull();
    // A lone file with any name is judged by its bytes.
    const renamed = await detectTransformersModel(...(await single(join(dir, "pickle.data"))));
    expect(renamed).toMatchObject({ format: "pytorch", details: { unsafePickle: true } });
    const pkl = await detectTransformersModel(...(await single(join(dir, "weights.pkl"))));
    expect(pkl).toMatchObject({ format: "pytorch", task: "unknown" });
  });

  it("ignores a .bin with no known signature", async () => {
    const d = await detect({ "config.json": LLAMA, ...TOKENIZER, "pytorch_model.bin": "plain text" });
    expect(d).toMatchObject({ format: "unknown" });
    expect(d!.warnings).toContain("pytorch_model.bin has neither a zip nor a pickle signature; ignored");
  });

  it("warns about pickle weights inside a sentence-transformers module", async () => {
    const d = await detect({
      "config.json": { architectures: ["MPNetModel"] },
      ...TOKENIZER,
      "model.safetensors": shard("w", 1),
      "modules.json": [
        { path: "", type: "Transformer" },
        { path: "2_Dense", type: "sentence_transformers.models.Dense" },
      ],
      "2_Dense/config.json": { in_features: 8 },
      "2_Dense/pytorch_model.bin": TORCH_ZIP,
    });
    expect(d).toMatchObject({ task: "embeddings", format: "safetensors" });
    expect(d!.warnings).toEqual(["2_Dense/pytorch_model.bin: sentence-transformers module weights are a pickle"]);
    expect(d!.files.find((f) => f.path === "2_Dense/pytorch_model.bin")?.role).toBe("weights");
  });
});

async function single(path: string): Promise<[LocalModelFileSystem, Awaited<ReturnType<LocalModelFileSystem["list"]>>]> {
  const fs = await LocalModelFileSystem.create(path);
  return [fs, await fs.list()];
}
