import { ConfigError } from "../../core/errors.js";
import { loadListing } from "./loadListing.js";
import { parseCommandArgs, REMOVE_OPTIONS } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent rm ID... [options]

Removes models pulled into the store (ids as \`tabagent ls\` shows them). Models from LM Studio, Ollama or your
own folders are never deleted. A model a running daemon has loaded is refused: unload it (or stop the daemon) first.

  --config FILE      config file (storeDir, and host, port and apiKeys to reach the daemon)
  --store-dir DIR    the store (TABAGENT_STORE_DIR; default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)
  --url URL          the daemon to ask what is loaded (default http://HOST:PORT from the config)
`;

/** `tabagent rm`: exit 0 when every id was removed, 1 when one was refused or unknown. */
export async function rmCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs("rm", args, REMOVE_OPTIONS);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  let listing;
  try {
    listing = await loadListing({ ...values, refresh: true }, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tabagent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const [{ queryDaemonModels }, { removeStoreModel }, { formatBytes }, { resolveStoreDir }] = await Promise.all([
    import("../../store/queryDaemonModels.js"),
    import("../../store/removeStoreModel.js"),
    import("../../store/formatBytes.js"),
    import("../../store/resolveStoreDir.js"),
  ]);
  const states = await queryDaemonModels(listing.config, { url: typeof values.url === "string" ? values.url : undefined });
  let failed = 0;
  for (const id of positionals) {
    const origin = listing.origins.get(id);
    const fail = (message: string) => {
      failed++;
      process.stderr.write(`tabagent rm: ${id}: ${message}\n`);
    };
    if (!origin) {
      fail("no such model (see `tabagent ls`)");
      continue;
    }
    if (origin.origin !== "store" || !origin.store) {
      fail(`not in the store: it comes from ${origin.origin} (${origin.label}); tabagent removes only models it keeps in the store`);
      continue;
    }
    const state = states?.get(id);
    if (state && state !== "unloaded") {
      fail(`a running daemon has it ${state}; unload it (idle TTL) or stop the daemon first`);
      continue;
    }
    const r = await removeStoreModel({ storeDir: resolveStoreDir(listing.config.storeDir, env), ...origin.store });
    process.stdout.write(`removed ${id} (${formatBytes(r.freedBytes)} freed)\n`);
  }
  return failed > 0 ? 1 : 0;
}
