import { readFile } from "node:fs/promises";
import type { Config } from "../config/configSchema.js";
import { ConfigError } from "../core/errors.js";
import { DEFAULT_HUB_URL } from "../detection/hub/HubModelFileSystem.js";
import { resolveStoreDir } from "./resolveStoreDir.js";

interface StoreSettings {
  storeDir: string;
  hubUrl: string;
  /** Never logged or printed. */
  accessToken: string | undefined;
}

/** The first line of a token file that is not blank or a `#` comment. */
async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError("hfTokenFile", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (!line) throw new ConfigError("hfTokenFile", `${path} holds no token`);
  return line;
}

/** Store folder, hub URL and token: HF_TOKEN (as Hugging Face's tools read it) wins over the config's token file. */
export async function storeSettings(config: Config, env: NodeJS.ProcessEnv): Promise<StoreSettings> {
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  return {
    storeDir: resolveStoreDir(config.storeDir, env),
    hubUrl: config.hubUrl ?? DEFAULT_HUB_URL,
    accessToken: fromEnv ?? (config.hfTokenFile ? await readTokenFile(config.hfTokenFile) : undefined),
  };
}
