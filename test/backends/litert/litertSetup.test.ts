// The LiteRT engine's own venv: found through TABAGENT_LITERT_PYTHON or <data-dir>/python-litert, else set up on the
// first request (503 engine_installing with Retry-After while setup-python.sh --engine litert runs), and stopped
// with the daemon. A fake base Python stands in for the slow part; nothing is installed.
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { createDaemon } from "../../../src/server/createDaemon.js";
import { ProcessRegistry } from "../../../src/supervisor/ProcessRegistry.js";
import { ensureLitertFixtures } from "../../fixtures/ensureLitertFixtures.js";
import { writeScript } from "../../native/fakeExecutable.js";

let dir: string;
let bundle: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "litert-setup-"));
  bundle = (await ensureLitertFixtures()).litertlm;
}, 30 * 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Running, not a zombie waiting for a parent to reap it (a killed script's children are reaped by init, later). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function daemonWith(env: NodeJS.ProcessEnv, processes = new ProcessRegistry()) {
  const config = loadConfig({
    base: {
      host: "127.0.0.1",
      port: 0,
      threads: 1,
      gpu: "off",
      logLevel: "silent",
      pythonAutoSetup: true,
      dataDir: join(dir, "data"),
      models: [{ id: "lt", path: bundle }],
    },
  });
  const daemon = await createDaemon({ config, processes, logger: pino({ level: "silent" }), env: { ...process.env, TABAGENT_DATA_DIR: join(dir, "data"), ...env } });
  const { url } = await daemon.listen();
  const ask = async () => {
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "lt", prompt: "Hi", max_tokens: 2 }),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), error: ((await res.json()) as { error: { code: string; message: string } }).error };
  };
  return { daemon, ask, processes };
}

describe("LiteRT venv", () => {
  it("a TABAGENT_LITERT_PYTHON that does not exist is the user's to fix: 503 engine_unavailable, no setup", async () => {
    const { daemon, ask, processes } = await daemonWith({ TABAGENT_LITERT_PYTHON: join(dir, "missing-python") });
    try {
      const r = await ask();
      expect(r.status).toBe(503);
      expect(r.error.code).toBe("engine_unavailable");
      expect(r.error.message).toContain("TABAGENT_LITERT_PYTHON");
      expect(processes.size).toBe(0);
    } finally {
      await daemon.close();
    }
  });

  it("none found: the first request starts setup-python.sh --engine litert (503 engine_installing), closing the daemon stops it", async () => {
    const state = join(dir, "setup-state");
    const python = await writeScript(
      join(dir, "slow-python"),
      `case "$1" in
  -c) case "$2" in *version_info*) echo 3.12 ;; esac; exit 0 ;;
  -m) sleep 300 & echo "$$ $! $*" > "${state}.tmp"; mv "${state}.tmp" "${state}"; wait; exit 0 ;;
esac
exit 1`,
    );
    const { daemon, ask, processes } = await daemonWith({ TABAGENT_LITERT_PYTHON: "", TABAGENT_PYTHON_BASE: python });
    let closed = false;
    try {
      const r = await ask();
      expect(r.status).toBe(503);
      expect(r.retryAfter).toBe("30");
      expect(r.error.code).toBe("engine_installing");
      for (let i = 0; i < 200 && !existsSync(state); i++) await new Promise((res) => setTimeout(res, 25));
      const [fakePython, helper, ...args] = (await readFile(state, "utf8")).trim().split(" ");
      // The venv is the LiteRT one, under python-litert/, not the transformers sidecar's.
      expect(args.join(" ")).toMatch(/^-m venv .*\/data\/python-litert\/[0-9a-f]{20}$/);
      expect(processes.size).toBe(1);
      await daemon.close();
      closed = true;
      for (const pid of [Number(fakePython), Number(helper)]) expect(isAlive(pid), `pid ${pid} of ${fakePython} ${helper}`).toBe(false);
      expect(processes.size).toBe(0);
    } finally {
      if (!closed) await daemon.close();
    }
  }, 60_000);
});
