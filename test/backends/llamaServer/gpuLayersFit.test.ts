// gpuLayers auto on llama-server: the daemon's own fit from the GGUF header and the GPU report (a fake one here,
// TABAGENT_FAKE_GPUS: a CPU build ignores --n-gpu-layers, so the real child still serves).
import { afterEach, describe, expect, it } from "vitest";
import { ensureTinyLlmGguf } from "../../fixtures/ensurePythonFixtures.js";
import { llamaServerBinary, pidsMatching } from "../../helpers/llamaServerBinary.js";
import { startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";
import { argAfter, childProcessInfo } from "./childProbe.js";

const GIB = 1024 ** 3;
let d: TestDaemon | null = null;
afterEach(async () => {
  await d?.close();
  d = null;
});

interface Runtime {
  gpu_layers: number | string;
  gpu_layers_reason: string;
  vram_bytes: number | null;
}

async function runtimeOf(model: string): Promise<Runtime> {
  const m = (await d!.client.models.retrieve(model)) as unknown as { tabagent: { runtime: Runtime | null } };
  return m.tabagent.runtime!;
}

async function start(fakeGpus: object, gpuLayers: "auto" | number = "auto"): Promise<void> {
  const [path, binary] = await Promise.all([ensureTinyLlmGguf(), llamaServerBinary()]);
  d = await startTestDaemon({ contextSize: 512, parallel: 2, gpuLayers, models: [{ id: "fit", path, engine: "llama-server" }] }, [], {
    ...process.env,
    TABAGENT_LLAMA_SERVER: binary,
    TABAGENT_FAKE_GPUS: JSON.stringify(fakeGpus),
  });
  const r = await d.client.completions.create({ model: "fit", prompt: "Hello", max_tokens: 2, temperature: 0 });
  expect(r.usage!.completion_tokens).toBe(2);
}

async function childNgl(): Promise<string | undefined> {
  const pids = await pidsMatching("--model ");
  const args = await Promise.all(pids.map(async (pid) => (await childProcessInfo(pid)).argv));
  const mine = args.find((a) => a.some((x) => x.endsWith("tiny-llm-f32.gguf")));
  return mine === undefined ? undefined : (argAfter(mine, "--n-gpu-layers") ?? "none");
}

describe("llama-server gpuLayers auto", () => {
  it("a GPU with room: every layer and the output (--n-gpu-layers 3), the reason in /v1/models", async () => {
    await start({ gpus: [{ index: 0, name: "Fake H100", vramTotalBytes: 80 * GIB, vramFreeBytes: 70 * GIB, driver: "580" }], cuda: "13.0" });
    expect(await childNgl()).toBe("3");
    const rt = await runtimeOf("fit");
    expect(rt.gpu_layers).toBe(3);
    expect(rt.gpu_layers_reason).toMatch(/^auto: all 2 layers and the output fit in 70\.00 GiB free on Fake H100 .*\(1024 tokens\) per layer$/);
    expect(rt.vram_bytes).toBeGreaterThan(0);
  });

  it("no room: 0 layers with the reason; no GPU: left to llama-server (no flag); a set number is passed as is", async () => {
    await start({ gpus: [{ index: 0, name: "Busy", vramTotalBytes: 8 * GIB, vramFreeBytes: 0.25 * GIB, driver: "580" }] });
    expect(await childNgl()).toBe("0");
    expect((await runtimeOf("fit")).gpu_layers_reason).toMatch(/^auto: no layer fits in 0\.25 GiB free on Busy/);
    await d!.close();
    await start({ gpus: [] });
    expect(await childNgl()).toBe("none");
    expect(await runtimeOf("fit")).toEqual({ gpu_layers: "auto", gpu_layers_reason: "auto: left to the engine (no NVIDIA GPU reported)", vram_bytes: null });
    await d!.close();
    await start({ gpus: [] }, 1);
    expect(await childNgl()).toBe("1");
    expect((await runtimeOf("fit")).gpu_layers_reason).toBe("configured: 1");
  });
});
