import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectionSchema } from "../../src/core/detectionSchema.js";
import { DetectionError, detectSource } from "../../src/detection/detectSource.js";
import { hubOpener } from "../../src/detection/openHubSource.js";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";
import { GgufWriter } from "../fixtures/gguf/GgufWriter.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { runCli } from "../helpers/spawnCli.js";
import { decoderSpec, writeOnnx } from "./onnx/writeOnnx.js";
import { buildSafetensors } from "./safetensors/writeSafetensors.js";

let dir: string;
let fx: FixturePaths;
let hub: FakeHub;

const llamaConfig = JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", max_position_embeddings: 2048 });
const safetensors = Buffer.from(buildSafetensors([{ name: "model.embed_tokens.weight", dtype: "BF16", shape: [32, 8] }]));
const bitnetGguf = new GgufWriter()
  .addString("general.architecture", "bitnet-b1.58")
  .addUint32("general.file_type", 40)
  .addTensorRaw("blk.0.attn_q.weight", [64, 64], 36, new Uint8Array(1024))
  .toBuffer();

beforeAll(async () => {
  fx = await ensureFixtures();
  dir = await mkdtemp(join(tmpdir(), "detect-source-"));
  // A folder of GGUF files with a projector, an HF snapshot, an ONNX export, a file of nothing in particular.
  await mkdir(join(dir, "ggufs"));
  await copyFile(fx.chatModelPath, join(dir, "ggufs", "chat.gguf"));
  await copyFile(fx.embeddingModelPath, join(dir, "ggufs", "embed.gguf"));
  await copyFile(fx.chatModelPath, join(dir, "ggufs", "mmproj-chat-f16.gguf"));
  await mkdir(join(dir, "snapshot"));
  await writeFile(join(dir, "snapshot", "config.json"), llamaConfig);
  await writeFile(join(dir, "snapshot", "tokenizer_config.json"), JSON.stringify({ chat_template: "{{ x }}" }));
  await writeFile(join(dir, "snapshot", "tokenizer.json"), "{}");
  await writeFile(join(dir, "snapshot", "model.safetensors"), safetensors);
  await mkdir(join(dir, "snapshot", "onnx"));
  await writeFile(join(dir, "snapshot", "onnx", "model.onnx"), writeOnnx(decoderSpec()));
  await writeFile(join(dir, "notes.gguf"), "this is not a model");
  await writeFile(join(dir, "bitnet.gguf"), bitnetGguf);
  hub = await startFakeHub({
    "tabagent/tiny-chat-GGUF": { files: { "tiny-chat.gguf": await readFile(fx.chatModelPath), "README.md": "# tiny" } },
    "tabagent/tiny-llama": { files: { "config.json": llamaConfig, "tokenizer.json": "{}", "model.safetensors": safetensors } },
    "tabagent/private": { private: true, files: { "config.json": llamaConfig } },
  });
});
afterAll(async () => {
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("detectSource", () => {
  it("a GGUF file: format, task, engine and reason from the header", async () => {
    const [d] = await detectSource(fx.chatModelPath);
    expect(detectionSchema.parse(d)).toMatchObject({
      format: "gguf",
      task: "chat",
      architecture: "llama",
      quantization: "F32",
      contextLength: 2048,
      hasChatTemplate: true,
      engine: { name: "node-llama-cpp" },
      alternatives: ["llama-server"],
    });
    expect(d!.reason).toMatch(/tokenizer\.chat_template is present/);
  });

  it("a folder of GGUF files: one model each, the projector attached, not listed", async () => {
    const ds = await detectSource(join(dir, "ggufs"));
    expect(ds.map((d) => [d.source.split("/").pop(), d.task])).toEqual([
      ["chat.gguf", "chat"],
      ["embed.gguf", "embeddings"],
    ]);
    expect(ds[0]!.files.map((f) => [f.path, f.role])).toEqual([
      ["chat.gguf", "weights"],
      ["mmproj-chat-f16.gguf", "projector"],
    ]);
  });

  it("an HF snapshot with an ONNX export: safetensors serves it, ONNX Runtime is an alternative", async () => {
    const [d] = await detectSource(join(dir, "snapshot"));
    expect(d).toMatchObject({ format: "safetensors", task: "chat", architecture: "LlamaForCausalLM", engine: { name: "transformers" }, alternatives: ["onnxruntime"] });
    expect(d!.parameterCount).toBe(256);
  });

  it("magic bytes win: a .gguf that is text is unknown, with the reason", async () => {
    const [d] = await detectSource(join(dir, "notes.gguf"));
    expect(d).toMatchObject({ format: "unknown", engine: null });
    expect(d!.reason).toMatch(/no known magic bytes/);
  });

  it("a BitNet GGUF is routed to the BitNet server, the tensor type named", async () => {
    const [d] = await detectSource(join(dir, "bitnet.gguf"));
    expect(d).toMatchObject({ format: "bitnet-gguf", quantization: "I2_S", engine: { name: "llama-server-bitnet" } });
    expect(d!.engine!.reason).toMatch(/blk\.0\.attn_q\.weight has type I2_S/);
  });

  it("a missing path that is not a repo id is a clear error", async () => {
    await expect(detectSource(join(dir, "nope"))).rejects.toBeInstanceOf(DetectionError);
  });
});

describe("detectSource on a Hugging Face repo (local fake hub)", () => {
  const openRemote = () => hubOpener({ hubUrl: hub.url });

  it("a GGUF repo, reading only the header through range requests", async () => {
    hub.resetStats();
    const [d] = await detectSource("tabagent/tiny-chat-GGUF", { openRemote: openRemote() });
    expect(d).toMatchObject({ source: "tabagent/tiny-chat-GGUF/tiny-chat.gguf", format: "gguf", task: "chat", engine: { name: "node-llama-cpp" } });
    expect(hub.stats.requests.every((r) => !r.path.includes("/resolve/") || r.range !== undefined)).toBe(true);
  });

  it("one named file of a repo", async () => {
    const ds = await detectSource("tabagent/tiny-chat-GGUF@main:tiny-chat.gguf", { openRemote: openRemote() });
    expect(ds).toHaveLength(1);
    expect(ds[0]!.files.map((f) => f.path)).toEqual(["tiny-chat.gguf"]);
  });

  it("a transformers repo", async () => {
    const [d] = await detectSource("tabagent/tiny-llama", { openRemote: openRemote() });
    expect(d).toMatchObject({ format: "safetensors", task: "text-generation", quantization: "BF16", contextLength: 2048 });
  });

  it("a private repo without a token, and a missing file, are clear errors", async () => {
    await expect(detectSource("tabagent/private", { openRemote: openRemote() })).rejects.toThrow(/HF_TOKEN/);
    await expect(detectSource("tabagent/tiny-chat-GGUF:nope.gguf", { openRemote: openRemote() })).rejects.toThrow(/has no file nope\.gguf/);
  });
});

describe("tabagent detect", () => {
  it("prints a short table with the reason, or JSON", async () => {
    const human = await runCli(["detect", fx.chatModelPath, join(dir, "bitnet.gguf")]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/FORMAT\s+TASK\s+ARCHITECTURE\s+PARAMS\s+QUANT\s+CONTEXT\s+ENGINE/);
    expect(human.stdout).toMatch(/gguf\s+chat\s+llama\s+\S+\s+F32\s+2048\s+node-llama-cpp/);
    expect(human.stdout).toMatch(/engine:\s+llama-server-bitnet: tensor blk\.0\.attn_q\.weight has type I2_S/);
    const json = await runCli(["detect", "--json", "tabagent/tiny-llama"], { HF_ENDPOINT: hub.url });
    expect(json.code).toBe(0);
    const parsed = detectionSchema.array().parse(JSON.parse(json.stdout));
    expect(parsed[0]).toMatchObject({ format: "safetensors", source: "tabagent/tiny-llama" });
  });

  it("exits 1 naming a source it cannot read, 2 for bad flags", async () => {
    const r = await runCli(["detect", join(dir, "nope")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope: no such file or folder/);
    expect((await runCli(["detect", fx.chatModelPath, "--engine", "warp-drive"])).code).toBe(2);
    const bad = await runCli(["detect", fx.chatModelPath, "--engine", "onnxruntime"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot serve a gguf model/);
  });
});
