import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { LlamaServerBackend } from "../../../src/backends/llamaServer/LlamaServerBackend.js";
import { systemClock } from "../../../src/core/Clock.js";
import { describeLocalModels } from "../../../src/registry/ModelRegistry.js";
import { ProcessRegistry } from "../../../src/supervisor/ProcessRegistry.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { llamaServerBinary, pidsMatching } from "../../helpers/llamaServerBinary.js";

describe("llama-server load/unload cycles", () => {
  it("50 cycles leave no process and no socket or socket directory behind", async () => {
    const binary = await llamaServerBinary();
    const fx = await ensureFixtures();
    const [found] = await describeLocalModels(fx.chatModelPath);
    const descriptor = found!.descriptor;
    const processes = new ProcessRegistry();
    const backend = new LlamaServerBackend(
      { id: "cycles", ...descriptor, engine: "llama-server" },
      {
        variant: "standard",
        logger: pino({ level: "silent" }),
        clock: systemClock,
        processes,
        env: { ...process.env, TABAGENT_LLAMA_SERVER: binary },
        threads: 1,
        contextSize: 256,
        parallel: 1,
        gpuLayers: "auto",
      },
    );
    const sockets = new Set<string>();
    const pids = new Set<number>();
    const signal = new AbortController().signal;
    for (let i = 0; i < 50; i++) {
      await backend.load(signal);
      const status = backend.processStatus!;
      expect(status.state).toBe("ready");
      expect(status.port).toBeNull();
      sockets.add(status.address!.replace(/^unix:/, ""));
      pids.add(status.pid!);
      await backend.unload();
      expect(processes.size).toBe(0);
    }
    expect(pids.size).toBe(50);
    const alive = (await pidsMatching(binary)).filter((p) => pids.has(p));
    expect(alive).toEqual([]);
    expect(sockets.size).toBe(50); // a fresh socket (and directory) per start
    for (const socket of sockets) expect(existsSync(dirname(socket))).toBe(false);
  }, 120_000);
});
