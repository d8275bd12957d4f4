import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decoderSpec, writeOnnx } from "../detection/onnx/writeOnnx.js";
import { GgufWriter } from "../fixtures/gguf/GgufWriter.js";
import { runCli } from "../helpers/spawnCli.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

let t: TestDaemon;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "routing-"));
  await mkdir(join(dir, "onnx-decoder"));
  await writeFile(join(dir, "onnx-decoder", "model.onnx"), writeOnnx(decoderSpec()));
  await mkdir(join(dir, "pickled"));
  await writeFile(join(dir, "pickled", "config.json"), JSON.stringify({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2" }));
  await writeFile(join(dir, "pickled", "pytorch_model.bin"), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
  await writeFile(
    join(dir, "ternary.gguf"),
    new GgufWriter().addString("general.architecture", "bitnet-25").addTensorRaw("blk.0.ffn_up.weight", [64, 64], 36, new Uint8Array(1024)).toBuffer(),
  );
  // No BitNet binary anywhere (CI and the BitNet tests build one into the cache): the 503 below is the point.
  const { TABAGENT_LLAMA_SERVER_BITNET: _bitnet, ...env } = process.env;
  t = await startTestDaemon({ modelsDirs: [dir] }, [], { ...env, TABAGENT_CACHE_DIR: join(dir, "empty-cache"), PATH: "/usr/bin:/bin" });
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

const chat = (model: string) => postJson(`${t.url}/v1/chat/completions`, { model, messages: [{ role: "user", content: "hi" }] });

describe("routing by detection", () => {
  it("lists every model with its format, engine and reason", async () => {
    const { data } = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; tabagent: Record<string, unknown> }[] };
    const byId = Object.fromEntries(data.map((m) => [m.id, m.tabagent]));
    expect(byId["onnx-decoder"]).toMatchObject({ format: "onnx", engine: "onnxruntime", task: "text-generation" });
    expect(byId.pickled).toMatchObject({ format: "pytorch", engine: null });
    expect(byId.ternary).toMatchObject({ format: "bitnet-gguf", engine: "llama-server-bitnet", engine_reason: expect.stringMatching(/I2_S/) });
    expect(byId["tiny-chat"]).toMatchObject({ format: "gguf", engine: "node-llama-cpp" });
  });

  it("a model whose engine this build cannot run → 503 naming the engine and what to do", async () => {
    const bitnet = await postJson(`${t.url}/v1/completions`, { model: "ternary", prompt: "x" });
    expect(bitnet.status).toBe(503);
    expect(bitnet.json.error!.message).toMatch(/llama-server-bitnet engine.*No llama-server-bitnet binary was found/);
  });

  it("an ONNX graph routed to onnxruntime but without a tokenizer → 503 model_load_failed saying so", async () => {
    const onnx = await postJson(`${t.url}/v1/completions`, { model: "onnx-decoder", prompt: "x" });
    expect(onnx.status).toBe(503);
    expect(onnx.json.error).toMatchObject({ code: "model_load_failed", type: "service_unavailable_error" });
    expect(onnx.json.error!.message).toMatch(/no tokenizer\.json/);
  });

  it("pickle weights are not served, and say why", async () => {
    const r = await postJson(`${t.url}/v1/completions`, { model: "pickled", prompt: "x" });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "model_not_servable", param: "model" });
    expect(r.json.error!.message).toMatch(/pickle/);
  });

  it("the GGUF models beside them keep working", async () => {
    const r = await chat("tiny-chat");
    expect(r.status).toBe(200);
  });
});

describe("engine override in the config file", () => {
  it("a model may name another engine that can serve its format; one that cannot is refused at startup", async () => {
    const file = join(dir, "tabagent.json");
    await writeFile(file, JSON.stringify({ models: [{ id: "via-server", path: t.fixtures.chatModelPath, engine: "llama-server" }] }));
    const r = await runCli(["models", "--config", file, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([
      { id: "via-server", engine: "llama-server", detection: { engine: { name: "llama-server", reason: "chosen in the model's config" } } },
    ]);
    await writeFile(file, JSON.stringify({ models: [{ path: t.fixtures.chatModelPath, engine: "onnxruntime" }] }));
    const bad = await runCli(["models", "--config", file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/engine 'onnxruntime' cannot serve a gguf model/);
  });
});
