import { execa, type Options, type ResultPromise } from "execa";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/tabagent", import.meta.url));

/** Runs `bin/tabagent` (the built CLI) and collects its output. */
export async function runCli(args: string[], env: Record<string, string> = {}) {
  const r = await execa(process.execPath, [BIN, ...args], {
    env: { ...env, TABAGENT_LOG_LEVEL: env.TABAGENT_LOG_LEVEL ?? "warn" },
    extendEnv: true,
    reject: false,
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export interface ServeProcess {
  child: ResultPromise;
  url: string;
  logs: string[];
}

/** Starts a daemon command and resolves once it logs "tabagent listening on URL"; rejects if it exits first. */
export async function startListening(file: string, args: string[], options: Options = {}, timeoutMs = 30_000): Promise<ServeProcess> {
  const child = execa(file, args, { reject: false, buffer: false, stdin: "ignore", ...options }) as ResultPromise;
  const logs: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`no "listening" line within ${timeoutMs} ms:\n${logs.join("\n")}`)), timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        const m = /tabagent listening on (http:\/\/\S+?)"/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      }
    });
    child.stderr!.on("data", (d: Buffer) => logs.push(d.toString()));
    void child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`${file} ${args.join(" ")} exited with ${r.exitCode}:\n${logs.join("\n")}`));
    });
  });
  return { child, url, logs };
}

/**
 * Starts `tabagent serve` on a free port and waits for its "listening" log line. Unless `env` names one, the daemon
 * gets a data folder of its own (removed when it exits): a daemon refuses a folder another one holds, and the
 * default folder may be held by a daemon running on this machine.
 */
export async function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const dataDir = env.TABAGENT_DATA_DIR === undefined ? await mkdtemp(join(tmpdir(), "tabagent-test-data-")) : null;
  const started = startListening(process.execPath, [BIN, "serve", "--port", "0", "--gpu", "off", "--threads", "1", ...args], {
    env: { TABAGENT_LOG_LEVEL: "info", ...(dataDir ? { TABAGENT_DATA_DIR: dataDir } : {}), ...env },
    extendEnv: true,
  });
  if (dataDir) {
    const removeDataDir = () => rm(dataDir, { recursive: true, force: true });
    started.then((s) => void s.child.finally(removeDataDir), removeDataDir);
  }
  return started;
}
