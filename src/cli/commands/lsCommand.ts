import { ConfigError } from "../../core/errors.js";
import { loadListing } from "./loadListing.js";
import { LISTING_OPTIONS, parseCommandArgs } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent ls [options]

Every model the daemon would serve: configured ones, and those found in the store (the Hugging Face cache),
LM Studio's folder and Ollama's store. LOADED comes from a running daemon (--url, default the config's address).
Detections are remembered between runs; --refresh scans everything again.

  --json                 the rows as JSON
  --refresh              detect every model again instead of using the remembered detections
  --config FILE          config file: the models, folders and discovery serve would use, and the daemon's address
  --store-dir DIR        the store (TABAGENT_STORE_DIR; default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)
  -m, --model [ID=]PATH  also list a model file or folder, as serve --model would serve it; repeatable
  --models-dir DIR       also list every model in DIR; repeatable
  --discover SOURCE      where else models are found: store, lmstudio, ollama (repeatable; none = off;
                         TABAGENT_DISCOVER, default all three)
  --url URL              the daemon to ask what is loaded (default http://HOST:PORT from the config)
`;

/** `tabagent ls`: id, format, task, size, engine, source, loaded. */
export async function lsCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs("ls", args, LISTING_OPTIONS);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    process.stderr.write(`tabagent ls: unexpected argument '${positionals[0]}' (ls takes options only)\n\n${USAGE}`);
    return 2;
  }
  let listing;
  try {
    listing = await loadListing(values, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tabagent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const [{ queryDaemonModels }, { formatBytes }] = await Promise.all([import("../../store/queryDaemonModels.js"), import("../../store/formatBytes.js")]);
  const states = await queryDaemonModels(listing.config, { url: typeof values.url === "string" ? values.url : undefined });
  const rows = listing.registry.list().map((m) => {
    const origin = listing.origins.get(m.id);
    const state = states?.get(m.id) ?? null;
    return {
      id: m.id,
      format: m.detection.format,
      task: m.task,
      size: m.sizeBytes,
      engine: m.engine,
      source: origin?.origin ?? "config",
      location: origin?.label ?? m.path,
      path: m.path,
      loaded: states === null ? null : state === "loaded",
      state,
    };
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    process.stdout.write("No models. Pull one with `tabagent pull owner/name`, or pass --model PATH / --models-dir DIR.\n");
    return 0;
  }
  const table = [
    ["ID", "FORMAT", "TASK", "SIZE", "ENGINE", "SOURCE", "LOADED"],
    ...rows.map((r) => [r.id, r.format, r.task, formatBytes(r.size), r.engine ?? "-", `${r.source} (${r.location})`, r.loaded === null ? "-" : r.loaded ? "yes" : "no"]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")}\n`);
  if (states === null) process.stdout.write("(LOADED: no daemon answered; start one with `tabagent serve`)\n");
  return 0;
}
