import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { BROWSERS, type Browser, type HostPlatform } from "../../nativeHost/manifestLocations.js";
import { NATIVE_HOST_USAGE } from "./helpTexts.js";
import { parseCommandArgs } from "./parseCommandArgs.js";

const INSTALL_OPTIONS = {
  browser: { type: "string", multiple: true },
  "extension-id": { type: "string", multiple: true },
  user: { type: "boolean" },
  system: { type: "boolean" },
  dir: { type: "string" },
  "data-dir": { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function platform(): HostPlatform {
  return process.platform === "win32" ? "win32" : process.platform === "darwin" ? "darwin" : "linux";
}

function browsersOf(values: Record<string, unknown>): Browser[] | string {
  const names = (values.browser as string[] | undefined) ?? ["all"];
  const out = new Set<Browser>();
  for (const n of names.flatMap((v) => v.split(","))) {
    if (n === "all") BROWSERS.forEach((b) => out.add(b));
    else if ((BROWSERS as readonly string[]).includes(n)) out.add(n as Browser);
    else return `--browser must be one of ${BROWSERS.join(", ")} or all, got '${n}'`;
  }
  return [...out];
}

/** `tabagent native-host`: run as a browser's native-messaging host, or install / uninstall / list its manifests. */
export async function nativeHostCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(NATIVE_HOST_USAGE);
    return 0;
  }
  if (sub === "install" || sub === "uninstall" || sub === "status") return manage(sub, rest, env);
  // As a browser starts it: our launcher's own options first, then the browser's arguments.
  let recordFile: string | undefined;
  let configFile: string | undefined;
  const callerArgs = [...args];
  while (callerArgs[0] === "--record" || callerArgs[0] === "--config") {
    const [flag, value] = callerArgs.splice(0, 2);
    if (flag === "--record") recordFile = value;
    else configFile = value;
  }
  const { runNativeHost } = await import("../../nativeHost/runNativeHost.js");
  const code = await runNativeHost({ callerArgs, recordFile, configFile, env });
  // Fetch's idle keep-alive sockets to the daemon would hold the process open for seconds after the browser left.
  process.exit(code);
}

async function manage(sub: "install" | "uninstall" | "status", args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs(`native-host ${sub}`, args, INSTALL_OPTIONS);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(NATIVE_HOST_USAGE);
    return 0;
  }
  const fail = (message: string) => {
    process.stderr.write(`tabagent native-host ${sub}: ${message}\n`);
    return 2;
  };
  if (positionals.length > 0) return fail(`unexpected argument '${positionals[0]}'`);
  const browsers = browsersOf(values);
  if (typeof browsers === "string") return fail(browsers);
  if (values.user && values.system) return fail("--user and --system are exclusive");
  const { defaultDataDir } = await import("../../native/findPythonEnv.js");
  const dataDir = typeof values["data-dir"] === "string" ? resolve(values["data-dir"]) : defaultDataDir(env);
  const home = env.HOME || homedir();
  const mod = await import("../../nativeHost/installNativeHost.js");
  if (sub === "status") {
    if (values["extension-id"] || values.dir || values.config || values.user || values.system) return fail("status takes --browser, --data-dir and --json only");
    const rows = mod.nativeHostStatus({ platform: platform(), home, dataDir, env }, browsers);
    if (values.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else {
      for (const r of rows) {
        const where = r.registryKey ? `${r.registryKey} -> ${r.manifestPath}` : r.manifestPath;
        const state = r.installed
          ? `installed, allows ${r.allowed.join(" ") || "nothing"}${r.launcherExists ? "" : ` (launcher ${r.launcher} is missing)`}`
          : "not installed";
        process.stdout.write(`${r.browser.padEnd(9)}${r.scope.padEnd(8)}${state}\n${" ".repeat(17)}${where}\n`);
      }
    }
    return 0;
  }
  const scope = values.system ? "system" : "user";
  const dir = typeof values.dir === "string" ? resolve(values.dir) : undefined;
  if (dir && browsers.length !== 1) return fail("--dir writes one browser's manifest: name it with --browser");
  const target = { platform: platform(), scope, home, dataDir, env, dir } as const;
  if (sub === "uninstall") {
    if (values["extension-id"] || values.config) return fail("uninstall takes --browser, --user/--system, --dir and --data-dir");
    const { removed } = await mod.uninstallNativeHost(target, browsers);
    if (values.json) process.stdout.write(`${JSON.stringify({ removed }, null, 2)}\n`);
    else process.stdout.write(removed.length === 0 ? "nothing to remove\n" : removed.map((p) => `removed ${p}\n`).join(""));
    return 0;
  }
  const ids = (values["extension-id"] as string[] | undefined)?.flatMap((v) => v.split(",")).filter(Boolean) ?? [];
  if (ids.length === 0) return fail("name the extensions allowed to call the host with --extension-id ID (repeatable)");
  const unusable = ids.filter((id) => browsers.every((b) => mod.idsFor(b, [id]).length === 0));
  if (unusable.length > 0) {
    return fail(`'${unusable[0]}' is not an extension id for ${browsers.join(", ")} (Chrome family: 32 letters a-p; Firefox: name@domain or {GUID})`);
  }
  const { projectRoot } = await import("../../native/projectRoot.js");
  const command = [process.execPath, join(projectRoot(), "bin", "tabagent")];
  const configFile = typeof values.config === "string" ? resolve(values.config) : env.TABAGENT_CONFIG ? resolve(env.TABAGENT_CONFIG) : undefined;
  let result;
  try {
    result = await mod.installNativeHost(target, browsers, ids, command, { configFile });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`tabagent native-host install: ${e.message}${e.code === "EACCES" && scope === "system" ? " (--system needs root / administrator)" : ""}\n`);
    return 1;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const i of result.installed) process.stdout.write(`${i.browser}: ${i.registryKey ? `${i.registryKey} -> ` : ""}${i.manifestPath}\n`);
    for (const s of result.skipped) process.stdout.write(`${s.browser}: skipped (${s.reason})\n`);
    if (result.installed.length > 0) process.stdout.write(`launcher: ${result.launcher}\n`);
  }
  return result.installed.length > 0 ? 0 : 1;
}
