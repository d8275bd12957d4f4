import { stat } from "node:fs/promises";
import { pino } from "pino";
import type { Config } from "../../config/configSchema.js";
import { checkConfig } from "../../config/loadConfig.js";
import { ConfigError } from "../../core/errors.js";
import { checkBindSafety } from "../../server/security/checkBindSafety.js";
import { resolveApiKeys } from "../../server/security/securitySchema.js";
import { parseCommandArgs } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent config check [FILE]

Checks a config file (YAML for .yaml/.yml, JSON otherwise) the way serve checks it before it listens, without
starting anything, and lists every problem (not only the first):
  - syntax, with line and column; duplicate keys; __proto__/constructor/prototype keys (refused at any depth)
  - every key, type and range; an unknown key is named with the nearest known one (Port: did you mean 'port'?)
  - the API key file (readable, holding keys) and whether host may be bound without a key
  - each model: the path exists, detection finds one model in it, and its engine (if set) can serve that format
  - each models folder can be read; no two models share an id
Warnings (a skipped file in a models folder, a missing hfTokenFile, an alias hidden by a model id) do not fail.
The file is checked alone, as serve would run it with no flags and no TABAGENT_* variables; models discovered in
the store, LM Studio or Ollama and hub-sourced models (pulled when serve starts) are not checked.

FILE defaults to --config FILE, then TABAGENT_CONFIG. Exit 0 when serve would accept the file, 2 when not.
`;

interface CheckReport {
  errors: string[];
  warnings: string[];
  config: Config | null;
  models: number;
}

/** `tabagent config check`. */
export async function configCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs("config", args, { config: { type: "string" }, help: { type: "boolean", short: "h" } });
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  const [sub, fileArg, ...extra] = positionals;
  if (values.help || sub !== "check" || extra.length > 0) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const file = fileArg ?? (typeof values.config === "string" ? values.config : undefined) ?? (env.TABAGENT_CONFIG || undefined);
  if (!file) {
    process.stderr.write(`tabagent config check: name a file (or set TABAGENT_CONFIG)\n`);
    return 2;
  }
  const report = await checkConfigFile(file, env);
  for (const w of report.warnings) process.stderr.write(`${file}: warning: ${w}\n`);
  for (const e of report.errors) process.stderr.write(`${file}: ${e}\n`);
  if (report.errors.length > 0 || !report.config) {
    const n = report.errors.length;
    process.stderr.write(`${file}: ${n} error${n === 1 ? "" : "s"}; serve would refuse this config\n`);
    return 2;
  }
  const config = report.config;
  const sources = config.models.filter((m) => m.source).length;
  process.stdout.write(
    `${file}: OK (${config.models.length} model${config.models.length === 1 ? "" : "s"}${sources ? `, ${sources} from the hub` : ""}, ${config.modelsDirs.length} models dir${config.modelsDirs.length === 1 ? "" : "s"}, ${Object.keys(config.aliases).length} aliases, ${config.upstreams.length} upstreams; ${report.models} local model${report.models === 1 ? "" : "s"} to serve)\n`,
  );
  return 0;
}

/**
 * What serve checks before it listens (src/server/createDaemon.ts), run on one file with every error collected:
 * the settings (checkConfig), the API keys and the bind address (resolveApiKeys, checkBindSafety), and the
 * configured models and folders (buildServedRegistry, without discovery).
 */
async function checkConfigFile(file: string, env: NodeJS.ProcessEnv): Promise<CheckReport> {
  // The file alone: environment variables and flags would hide what the file itself says.
  const loaded = checkConfig({ file, env: {} });
  if (!loaded.ok) return { errors: loaded.errors.map((e) => e.message), warnings: [], config: null, models: 0 };
  const config = loaded.config;
  const errors: string[] = [];
  const warnings: string[] = [];
  const collect = (err: unknown) => {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(err.message);
  };

  // As createDaemon does: the key file first, then whether host may be bound with the keys there are. When the
  // key file failed, that is the error; the bind check would only blame its absence.
  let keys: string[] | null = null;
  try {
    const resolved = resolveApiKeys(config);
    keys = resolved.keys;
    warnings.push(...resolved.warnings);
  } catch (err) {
    collect(err);
  }
  if (keys) {
    const bind = checkBindSafety({ host: config.host, apiKeys: keys, insecureNoAuth: config.insecureNoAuth });
    if (!bind.ok) collect(new ConfigError("host", bind.message));
    else if (bind.warning) warnings.push(bind.warning);
  }

  // What serve's registry logs while it reads the models folders (files skipped, links not followed) are warnings.
  const logger = pino(
    { level: "warn", base: null, timestamp: false },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; path?: string; err?: string; reason?: string };
        warnings.push([entry.path, entry.msg, entry.reason ?? entry.err].filter(Boolean).join(": "));
      },
    },
  );
  const { buildServedRegistry } = await import("../../store/buildServedRegistry.js");
  const { registry } = await buildServedRegistry({ config: { ...config, discover: [] }, env, logger, onError: collect });

  if (config.hfTokenFile && !(await stat(config.hfTokenFile).catch(() => null))) warnings.push(`hfTokenFile: ${config.hfTokenFile} does not exist`);
  const ids = new Set(config.models.map((m) => m.id).filter((x): x is string => x !== undefined));
  for (const [alias, target] of Object.entries(config.aliases))
    if (ids.has(alias)) warnings.push(`aliases.${alias}: a model has this id, so the alias (-> ${target}) is never used`);
  return { errors, warnings, config, models: registry.size };
}
