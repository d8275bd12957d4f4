import { DEFAULT_DISCOVERY, type Config } from "../../config/configSchema.js";
import { loadConfig } from "../../config/loadConfig.js";
import { defaultDataDir } from "../../native/findPythonEnv.js";
import { createLogger } from "../../server/createLogger.js";
import { join } from "node:path";
import { listingFlags } from "./parseCommandArgs.js";

/** Config, served models (configured + discovered) and their origins, with detections cached between runs. */
export async function loadListing(values: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const config: Config = loadConfig({
    env,
    flags: listingFlags(values),
    file: typeof values.config === "string" ? values.config : undefined,
    base: { discover: [...DEFAULT_DISCOVERY] },
  });
  return { config, ...(await servedModels(config, env, values.refresh === true)) };
}

/** Served models for a loaded config; `refresh` ignores the detections remembered from earlier runs. */
export async function servedModels(config: Config, env: NodeJS.ProcessEnv, refresh: boolean) {
  const [{ buildServedRegistry }, { PersistentDetectionCache }] = await Promise.all([
    import("../../store/buildServedRegistry.js"),
    import("../../store/PersistentDetectionCache.js"),
  ]);
  const cache = await PersistentDetectionCache.open(join(config.dataDir ?? defaultDataDir(env), "detections.json"), { refresh });
  const logger = createLogger({ level: "warn", pretty: false, destination: process.stderr });
  const served = await buildServedRegistry({ config, env, logger, cache });
  await cache.save().catch(() => undefined);
  return served;
}
