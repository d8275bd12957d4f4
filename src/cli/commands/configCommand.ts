import { stat } from "node:fs/promises";
import { HUB_SOURCE_PATH_PREFIX } from "../../config/configSchema.js";
import { loadConfig } from "../../config/loadConfig.js";
import { ConfigError } from "../../core/errors.js";
import { parseCommandArgs } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent config check [FILE]

Validates a config file (YAML for .yaml/.yml, JSON otherwise) without starting anything: every key, type and
range, duplicate keys and __proto__/constructor/prototype keys (refused at any depth, as serve refuses them), and
whether the paths it names exist. FILE defaults to --config / TABAGENT_CONFIG. Exit 0 when valid, 2 when not.
`;

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
  let config;
  try {
    // The file alone: environment variables and flags would hide what the file itself says.
    config = loadConfig({ file, env: {} });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${file}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const warnings: string[] = [];
  for (const [i, m] of config.models.entries()) {
    if (m.path.startsWith(HUB_SOURCE_PATH_PREFIX)) continue;
    if (!(await stat(m.path).catch(() => null))) warnings.push(`models[${i}].path: ${m.path} does not exist`);
  }
  for (const [i, d] of config.modelsDirs.entries()) if (!(await stat(d).catch(() => null))?.isDirectory()) warnings.push(`modelsDirs[${i}]: ${d} is not a folder`);
  if (config.hfTokenFile && !(await stat(config.hfTokenFile).catch(() => null))) warnings.push(`hfTokenFile: ${config.hfTokenFile} does not exist`);
  const ids = new Set(config.models.map((m) => m.id).filter((x): x is string => x !== undefined));
  for (const [alias, target] of Object.entries(config.aliases))
    if (ids.has(alias)) warnings.push(`aliases.${alias}: a model has this id, so the alias (-> ${target}) is never used`);
  for (const w of warnings) process.stderr.write(`${file}: warning: ${w}\n`);
  const sources = config.models.filter((m) => m.source).length;
  process.stdout.write(
    `${file}: OK (${config.models.length} model${config.models.length === 1 ? "" : "s"}${sources ? `, ${sources} from the hub` : ""}, ${config.modelsDirs.length} models dir${config.modelsDirs.length === 1 ? "" : "s"}, ${Object.keys(config.aliases).length} aliases, ${config.upstreams.length} upstreams)\n`,
  );
  return 0;
}
