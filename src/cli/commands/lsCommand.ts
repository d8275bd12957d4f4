import { ConfigError } from "../../core/errors.js";
import { loadListing } from "./loadListing.js";
import { LISTING_OPTIONS, parseCommandArgs } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent ls [options]

Every model the daemon would serve: configured ones, and those found in the store (the Hugging Face cache),
LM Studio's folder and Ollama's store. A running daemon (--url, default http://HOST:PORT from the config) is asked
what it serves (GET /v1/models, 1.5 s at most): its models that are not found here (other folders or flags,
upstream servers, aliases) are listed too, with SOURCE daemon, and LOADED says what it has loaded. When no daemon
answers, one line says so and the local models are listed. Detections are remembered between runs; --refresh
scans everything again.

  --json                 the rows as JSON
  --refresh              detect every model again instead of using the remembered detections
  --config FILE          config file: the models, folders and discovery serve would use, and the daemon's address
  --store-dir DIR        the store (TABAGENT_STORE_DIR; default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)
  -m, --model [ID=]PATH  also list a model file or folder, as serve --model would serve it; repeatable
  --models-dir DIR       also list every model in DIR; repeatable
  --discover SOURCE      where else models are found: store, lmstudio, ollama (repeatable; none = off;
                         TABAGENT_DISCOVER, default all three)
  --url URL              the daemon to ask what it serves and has loaded (default http://HOST:PORT from the config)
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
  const [{ fetchDaemonModels }, { formatBytes }] = await Promise.all([import("../../store/queryDaemonModels.js"), import("../../store/formatBytes.js")]);
  const daemon = await fetchDaemonModels(listing.config, { url: typeof values.url === "string" ? values.url : undefined });
  const served = daemon.ok ? new Map(daemon.models.map((m) => [m.id, m])) : null;
  const rows: LsRow[] = listing.registry.list().map((m) => {
    const origin = listing.origins.get(m.id);
    const state = served?.get(m.id)?.state ?? null;
    return {
      id: m.id,
      format: m.detection.format,
      task: m.task,
      size: m.sizeBytes,
      engine: m.engine,
      source: origin?.origin ?? "config",
      location: origin?.label ?? m.path,
      path: m.path,
      served: served === null ? null : served.has(m.id),
      loaded: served === null ? null : state === "loaded",
      state,
    };
  });
  // What the daemon serves that is not found here: other --model/--models-dir settings, upstreams, aliases.
  const local = new Set(rows.map((r) => r.id));
  for (const m of daemon.ok ? daemon.models : []) {
    if (local.has(m.id)) continue;
    rows.push({
      id: m.id,
      format: m.format,
      task: m.task,
      size: m.sizeBytes,
      engine: m.engine,
      source: "daemon",
      location: [daemon.url, m.upstream ? `upstream ${m.upstream}` : null, m.aliasOf ? `alias of ${m.aliasOf}` : null].filter(Boolean).join(", "),
      path: null,
      served: true,
      loaded: m.state === "loaded",
      state: m.state,
    });
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  const status = daemon.ok
    ? `(daemon at ${daemon.url}: ${daemon.models.length} model${daemon.models.length === 1 ? "" : "s"} served)`
    : `(no daemon answered at ${daemon.url}: ${daemon.reason}; local models only. Start one with \`tabagent serve\`, or name one with --url)`;
  if (rows.length === 0) {
    process.stdout.write(`No models. Pull one with \`tabagent pull owner/name\`, or pass --model PATH / --models-dir DIR.\n${status}\n`);
    return 0;
  }
  const table = [
    ["ID", "FORMAT", "TASK", "SIZE", "ENGINE", "SOURCE", "LOADED"],
    ...rows.map((r) => [
      r.id,
      r.format ?? "-",
      r.task ?? "-",
      r.size === null ? "-" : formatBytes(r.size),
      r.engine ?? "-",
      `${r.source} (${r.location})`,
      r.loaded === null ? "-" : r.served === false ? "not served" : r.loaded ? "yes" : "no",
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")}\n`);
  process.stdout.write(`${status}\n`);
  return 0;
}

/** One row of `tabagent ls` (and of its --json). */
interface LsRow {
  id: string;
  format: string | null;
  task: string | null;
  size: number | null;
  engine: string | null;
  /** config, models-dir, store, lmstudio, ollama; daemon: only the running daemon serves it. */
  source: string;
  location: string;
  /** The file or folder; null for a model only the daemon knows. */
  path: string | null;
  /** Whether the running daemon serves it; null when no daemon answered. */
  served: boolean | null;
  loaded: boolean | null;
  state: string | null;
}
