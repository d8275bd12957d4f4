// PythonSidecarBackend without torch: a second engine (test/backends/transformers/fixtures/echo_engine, stdlib only)
// run by the system Python, the transformers engine's up-front refusals, and the daemon's automatic setup.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino, type Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PythonSidecarBackend } from "../../../src/backends/python/PythonSidecarBackend.js";
import { TransformersBackend } from "../../../src/backends/transformers/TransformersBackend.js";
import { systemClock } from "../../../src/core/Clock.js";
import { EngineUnavailableError, ModelNotServableError } from "../../../src/core/errors.js";
import type { ModelDescriptor } from "../../../src/core/types.js";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { createDaemon } from "../../../src/server/createDaemon.js";
import { ProcessStartError } from "../../../src/supervisor/errors.js";
import { ProcessRegistry } from "../../../src/supervisor/ProcessRegistry.js";
import { writeScript } from "../../native/fakeExecutable.js";
import { argAfter, childProcessInfo } from "../llamaServer/childProbe.js";

const FIXTURES = fileURLToPath(new URL("./fixtures", import.meta.url));
/** The system interpreter (not a pyenv shim): the echo engine needs only the standard library. */
const SYSTEM_PYTHON = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "python-sidecar-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function descriptor(overrides: Partial<ModelDescriptor> & { details?: Record<string, unknown>; warnings?: string[] } = {}): ModelDescriptor {
  const { details = {}, warnings = [], ...rest } = overrides;
  return {
    id: "m",
    path: join(dir, "model"),
    task: "embeddings",
    engine: "transformers",
    sizeBytes: 0,
    created: 0,
    detection: {
      source: join(dir, "model"),
      format: "safetensors",
      task: "embeddings",
      reason: "test",
      architecture: null,
      parameterCount: null,
      quantization: null,
      contextLength: null,
      hasChatTemplate: false,
      files: [],
      engine: { name: "transformers", reason: "test" },
      alternatives: [],
      warnings,
      details,
    },
    ...rest,
  };
}

function capture(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString("utf8")), done()) });
  return { logger: pino({ level: "debug" }, sink), text: () => lines.join("") };
}

/** A second Python engine: its name, its package and its arguments; everything else is the base's. */
class EchoBackend extends PythonSidecarBackend {
  protected readonly engine = "echo";
  protected readonly module = "echo_engine";
  protected moduleArgs(): string[] {
    return ["--model", this.descriptor.path, "--id", this.descriptor.id];
  }
  protected override packageDirs(): string[] {
    return [FIXTURES, ...super.packageDirs()];
  }
}

function echo(d: ModelDescriptor, processes: ProcessRegistry, logger: Logger, env: NodeJS.ProcessEnv = { ...process.env, TABAGENT_PYTHON: SYSTEM_PYTHON }) {
  return new EchoBackend(d, { logger, clock: systemClock, processes, env, parallel: 1, setup: null, stallTimeoutMs: 10_000, startTimeoutMs: 20_000 });
}

const isAlive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

describe("PythonSidecarBackend", () => {
  it("a second Python engine is a subclass plus its package: private socket, per-start key, supervision, requests", async () => {
    const processes = new ProcessRegistry();
    const log = capture();
    const backend = echo(descriptor({ id: "echo-1" }), processes, log.logger);
    try {
      await backend.load(AbortSignal.timeout(20_000));
      const [pid] = processes.pids();
      const { argv, env } = await childProcessInfo(pid!);
      expect(argv.slice(argv.indexOf("-m"), argv.indexOf("-m") + 2)).toEqual(["-m", "echo_engine"]);
      const socket = argAfter(argv, "--socket")!;
      expect(backend.processStatus).toMatchObject({ state: "ready", address: `unix:${socket}` });
      expect(env.TABAGENT_SIDECAR_KEY).toMatch(/^[0-9a-f]{64}$/); // in its environment, never on its command line
      expect(argv.join(" ")).not.toContain(env.TABAGENT_SIDECAR_KEY);
      const result = await backend.embed({ model: "echo-1", input: ["hello", "hi"] }, AbortSignal.timeout(5_000));
      expect(result).toEqual({
        vectors: [
          [5, 1],
          [2, 1],
        ],
        promptTokens: 7,
      });
      expect(log.text()).toContain("[sidecar] loaded"); // the base's output levels: [sidecar] lines at info
    } finally {
      await backend.unload();
    }
    expect(processes.size).toBe(0);
  });

  it("a module that fails to load: the error names the engine and exit code; what it printed stays in the log", async () => {
    const processes = new ProcessRegistry();
    const log = capture();
    const backend = echo(descriptor({ id: "echo-fail", path: join(dir, "fail") }), processes, log.logger);
    const err = (await backend.load(AbortSignal.timeout(20_000)).catch((e: unknown) => e)) as ProcessStartError;
    expect(err).toBeInstanceOf(ProcessStartError);
    expect(err.message).toBe("The echo:echo-fail process failed to start: it exited with code 3 while starting; its last output is in the daemon log.");
    expect(err.message).not.toContain("hf_echoSecret");
    expect(log.text()).toContain("cannot load the model: RuntimeError: cannot open the model: TOKEN=hf_echoSecretThatStaysInTheLog");
    expect(backend.processStatus?.lastError).toContain("hf_echoSecretThatStaysInTheLog"); // the local operator's view
    await backend.unload();
    expect(processes.size).toBe(0);
  });

  it("no interpreter and no automatic setup: 503 engine_unavailable naming the engine and the setup command", async () => {
    const backend = echo(descriptor(), new ProcessRegistry(), pino({ level: "silent" }), { ...process.env, TABAGENT_PYTHON: join(dir, "no-python") });
    const err = await backend.load(AbortSignal.timeout(5_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailableError);
    expect((err as Error).message).toMatch(/needs the echo engine.*no Python environment for the echo sidecar.*tabagent setup python/);
  });
});

describe("transformers: trust_remote_code", () => {
  const transformers = (d: ModelDescriptor) =>
    new TransformersBackend(d, {
      logger: pino({ level: "silent" }),
      clock: systemClock,
      processes: new ProcessRegistry(),
      env: { ...process.env, TABAGENT_PYTHON: "" },
      pythonPath: join(dir, "no-python"), // past the refusals, the load stops at the missing interpreter
      threads: 1,
      parallel: 1,
      setup: null,
      stallTimeoutMs: 10_000,
    });
  const custom = { needsCustomCode: true, autoMap: ["AutoModelForCausalLM"] };

  it("is decided by detection's needsCustomCode and the config's trustRemoteCode, not by a warning's wording", async () => {
    // Detection's facts without its warning text (reworded, translated or capped): still refused.
    const refused = await transformers(descriptor({ details: custom, warnings: [] }))
      .load(AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ModelNotServableError);
    expect((refused as ModelNotServableError).status).toBe(400);
    expect((refused as Error).message).toMatch(/needs custom code \(auto_map names AutoModelForCausalLM\); set trustRemoteCode: true/);
    // The model's config entry allows it: past the refusal.
    const allowed = await transformers(descriptor({ details: custom, engineOptions: { trustRemoteCode: true } }))
      .load(AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(allowed).toBeInstanceOf(EngineUnavailableError);
    // A warning that merely mentions custom code is not a reason to refuse.
    const worded = await transformers(descriptor({ warnings: ["needs custom code (trust_remote_code): says a warning"] }))
      .load(AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(worded).toBeInstanceOf(EngineUnavailableError);
  });

  it("the sidecar gets --trust-remote-code only when the config says true", () => {
    const args = (d: ModelDescriptor) => (transformers(d) as unknown as { moduleArgs(): string[] }).moduleArgs();
    expect(args(descriptor({ details: custom }))).not.toContain("--trust-remote-code");
    expect(args(descriptor({ details: custom, engineOptions: { trustRemoteCode: true } }))).toContain("--trust-remote-code");
  });
});

describe("automatic Python setup", () => {
  it("closing the daemon stops a setup in progress: registered while it runs, its whole process group gone after", async () => {
    // A Python that passes setup-python.sh's checks, then "builds the venv" slowly with a helper process of its own.
    const state = join(dir, "setup-state");
    const python = await writeScript(
      join(dir, "slow-python"),
      `case "$1" in
  -c) case "$2" in *version_info*) echo 3.12 ;; esac; exit 0 ;;
  -m) sleep 300 & echo "$$ $!" > "${state}.tmp"; mv "${state}.tmp" "${state}"; wait; exit 0 ;;
esac
exit 1`,
    );
    const model = join(dir, "hf");
    await mkdir(model);
    const header = Buffer.from(JSON.stringify({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }).padEnd(64, " "));
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(header.length));
    await writeFile(join(model, "model.safetensors"), Buffer.concat([size, header, Buffer.alloc(8)]));
    await writeFile(join(model, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama" }));

    const config = loadConfig({
      base: {
        host: "127.0.0.1",
        port: 0,
        threads: 1,
        gpu: "off",
        logLevel: "silent",
        pythonAutoSetup: true,
        dataDir: join(dir, "data"),
        models: [{ id: "hf", path: model }],
      },
    });
    const processes = new ProcessRegistry();
    const daemon = await createDaemon({
      config,
      processes,
      logger: pino({ level: "silent" }),
      env: { ...process.env, TABAGENT_PYTHON: "", TABAGENT_PYTHON_BASE: python, TABAGENT_DATA_DIR: join(dir, "data") },
    });
    const { url } = await daemon.listen();
    let closed = false;
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "hf", prompt: "Hi", max_tokens: 2 }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("30");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("engine_installing");
      for (let i = 0; i < 200 && !existsSync(state); i++) await new Promise((r) => setTimeout(r, 25));
      const [fakePython, helper] = (await readFile(state, "utf8")).trim().split(" ").map(Number) as [number, number];
      const [script] = processes.pids(); // setup-python.sh, leading the group
      expect(processes.size).toBe(1); // the CLI's exit handlers would kill it if the daemon died
      for (const pid of [script!, fakePython, helper]) expect(isAlive(pid)).toBe(true);

      const started = Date.now();
      await daemon.close();
      closed = true;
      expect(Date.now() - started).toBeLessThan(5_000); // SIGTERM to the group was enough
      for (const pid of [script!, fakePython, helper]) expect(isAlive(pid)).toBe(false);
      expect(processes.size).toBe(0);
    } finally {
      if (!closed) await daemon.close();
    }
  }, 30_000);
});
