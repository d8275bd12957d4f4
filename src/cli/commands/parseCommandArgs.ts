import { parseArgs, type ParseArgsConfig } from "node:util";

/** parseArgs that reports a bad option as `tabagent CMD: message` and exit code 2 instead of throwing. */
export function parseCommandArgs<T extends ParseArgsConfig["options"]>(
  command: string,
  args: string[],
  options: T,
): { values: Record<string, unknown>; positionals: string[] } | number {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    return { values, positionals };
  } catch (err) {
    process.stderr.write(`tabagent ${command}: ${(err as Error).message}\n`);
    return 2;
  }
}

/** Options every store command takes, mapped to config keys. */
export const STORE_OPTIONS = {
  config: { type: "string" },
  "store-dir": { type: "string" },
  "hub-url": { type: "string" },
  "hf-token-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export function storeFlags(values: Record<string, unknown>): Record<string, string> {
  const flags: Record<string, string> = {};
  if (typeof values["store-dir"] === "string") flags.storeDir = values["store-dir"];
  if (typeof values["hub-url"] === "string") flags.hubUrl = values["hub-url"];
  if (typeof values["hf-token-file"] === "string") flags.hfTokenFile = values["hf-token-file"];
  return flags;
}

/** Options of `tabagent ls`: where models are (as serve finds them) and which daemon to ask what is loaded. */
export const LISTING_OPTIONS = {
  config: { type: "string" },
  "store-dir": { type: "string" },
  "models-dir": { type: "string", multiple: true },
  model: { type: "string", short: "m", multiple: true },
  discover: { type: "string", multiple: true },
  url: { type: "string" },
  json: { type: "boolean" },
  refresh: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/**
 * Options of `tabagent rm`: it deletes only from the store, always detects afresh and prints plain lines, so the
 * listing's --models-dir, --model and --discover (other places models are), --json and --refresh have no job there.
 */
export const REMOVE_OPTIONS = {
  config: { type: "string" },
  "store-dir": { type: "string" },
  url: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export function listingFlags(values: Record<string, unknown>): Record<string, string | string[]> {
  const flags: Record<string, string | string[]> = storeFlags(values);
  if (Array.isArray(values["models-dir"])) flags.modelsDirs = values["models-dir"] as string[];
  if (Array.isArray(values.model)) flags.models = values.model as string[];
  if (Array.isArray(values.discover)) flags.discover = values.discover as string[];
  return flags;
}
