import { createConnection } from "node:net";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { LlamaServerBackend } from "../../../src/backends/llamaServer/LlamaServerBackend.js";
import { systemClock } from "../../../src/core/Clock.js";
import { describeLocalModels } from "../../../src/registry/ModelRegistry.js";
import { ProcessRegistry } from "../../../src/supervisor/ProcessRegistry.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { llamaServerBinary, pidsMatching } from "../../helpers/llamaServerBinary.js";

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

describe("llama-server load/unload cycles", () => {
  it("50 cycles leave no process and no listening port behind", async () => {
    const binary = await llamaServerBinary();
    const fx = await ensureFixtures();
    const [found] = await describeLocalModels(fx.chatModelPath);
    const descriptor = found!.descriptor;
    const processes = new ProcessRegistry();
    const backend = new LlamaServerBackend(
      { id: "cycles", ...descriptor, engine: "llama-server" },
      { variant: "standard", logger: pino({ level: "silent" }), clock: systemClock, processes, env: { ...process.env, TABAGENT_LLAMA_SERVER: binary }, threads: 1, contextSize: 256, parallel: 1, gpuLayers: "auto" },
    );
    const ports = new Set<number>();
    const pids = new Set<number>();
    const signal = new AbortController().signal;
    for (let i = 0; i < 50; i++) {
      await backend.load(signal);
      const status = backend.processStatus!;
      expect(status.state).toBe("ready");
      ports.add(status.port!);
      pids.add(status.pid!);
      await backend.unload();
      expect(processes.size).toBe(0);
    }
    expect(pids.size).toBe(50);
    const alive = (await pidsMatching(binary)).filter((p) => pids.has(p));
    expect(alive).toEqual([]);
    for (const port of ports) expect(await portOpen(port)).toBe(false);
  }, 120_000);
});
