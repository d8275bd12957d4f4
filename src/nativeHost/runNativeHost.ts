import { chdir } from "node:process";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { loadConfig } from "../config/loadConfig.js";
import { ConfigError } from "../core/errors.js";
import { hubAccessFromEnv } from "../detection/openHubSource.js";
import { defaultDataDir } from "../native/findPythonEnv.js";
import { projectRoot } from "../native/projectRoot.js";
import { packageVersion } from "../server/packageVersion.js";
import { resolveApiKeys } from "../server/security/securitySchema.js";
import { daemonUrl } from "../store/queryDaemonModels.js";
import { refuseCaller } from "./checkCaller.js";
import { DaemonConnector } from "./DaemonConnector.js";
import { encodeFrames } from "./encodeFrames.js";
import { NativeHost } from "./NativeHost.js";

export interface RunNativeHostOptions {
  /** The browser's arguments: the caller's origin (Chrome family) or the manifest path and add-on id (Firefox). */
  callerArgs: string[];
  /** The install record the launcher names; its manifests are the allow list. */
  recordFile: string | undefined;
  configFile: string | undefined;
  env: NodeJS.ProcessEnv;
}

/**
 * Takes stdout for protocol frames only: from here on anything else that writes to process.stdout (console.log, a
 * library) goes to stderr. Returns the writable the frames go to.
 */
function claimStdout(): Writable {
  const stdout = process.stdout;
  const write = stdout.write.bind(stdout);
  const frames = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      write(chunk, (err?: Error | null) => callback(err ?? null));
    },
  });
  stdout.on("error", (err: Error) => frames.destroy(err));
  const toStderr = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  stdout.write = (...args: unknown[]) => toStderr(...args);
  return frames;
}

/** `tabagent native-host` as a browser starts it: serve the protocol on stdin/stdout until the browser closes stdin. */
export async function runNativeHost(options: RunNativeHostOptions): Promise<number> {
  const stdoutIsTerminal = process.stdout.isTTY === true;
  const frames = claimStdout();
  const logger = pino({ level: options.env.TABAGENT_LOG_LEVEL ?? "warn", base: { pid: process.pid, component: "native-host" } }, pino.destination(2));
  const fatal = async (code: string, message: string) => {
    logger.error({ code }, message);
    for (const frame of encodeFrames({ id: null, ok: false, error: { code, message } })) frames.write(frame);
    await new Promise<void>((resolve) => frames.end(resolve));
    return 1;
  };
  const refusal = refuseCaller(options.callerArgs, options.recordFile);
  if (refusal && stdoutIsTerminal) {
    // Run by hand: a person reads this, not a browser.
    process.stderr.write(`tabagent native-host: ${refusal}\nBrowsers start this host; see \`tabagent native-host --help\` to install it.\n`);
    return 1;
  }
  if (refusal) return fatal("origin_not_allowed", refusal);
  let config;
  try {
    config = loadConfig({ env: options.env, file: options.configFile });
  } catch (err) {
    if (err instanceof ConfigError) return fatal("config_error", err.message);
    throw err;
  }
  let apiKey = options.env.TABAGENT_API_KEY || undefined;
  try {
    apiKey ??= resolveApiKeys(config).keys[0];
  } catch (err) {
    return fatal("config_error", (err as Error).message);
  }
  // models.detect takes hub ids only; resolving one as a relative path must not find the browser's working folder.
  if (options.recordFile) chdir(dirname(options.recordFile));
  const dataDir = config.dataDir ?? defaultDataDir(options.env);
  const connector = new DaemonConnector({
    target: { url: options.env.TABAGENT_URL ? options.env.TABAGENT_URL.replace(/\/+$/, "") : daemonUrl(config), apiKey },
    autoStart: config.nativeHostAutoStart && !options.env.TABAGENT_URL,
    serveCommand: [process.execPath, join(projectRoot(), "bin", "tabagent"), "serve", ...(options.configFile ? ["--config", options.configFile] : [])],
    logDir: join(dataDir, "native-host"),
    logger,
  });
  const hub = hubAccessFromEnv(options.env);
  const host = new NativeHost({
    input: process.stdin,
    output: frames,
    daemon: (signal) => connector.connect(signal),
    onDaemonUnavailable: () => connector.reset(),
    logger,
    version: packageVersion(),
    hub: { url: config.hubUrl ?? hub.hubUrl, token: hub.token },
  });
  const stop = (signal: NodeJS.Signals) => host.stop(signal);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await host.run();
  await new Promise<void>((resolve) => frames.end(resolve));
  return 0;
}
