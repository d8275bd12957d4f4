import { readFileSync, statSync } from "node:fs";
import { API_KEY_PATTERN, API_KEY_RULE, type SecurityConfig } from "../../config/securityConfigShape.js";
import { ConfigError } from "../../core/errors.js";

/** File access for resolveApiKeys; tests replace it. */
export interface KeyFileAccess {
  readFile(path: string): string;
  /** The file's permission bits (`stat.mode`), or null where they mean nothing (Windows). */
  mode(path: string): number | null;
}

const nodeKeyFileAccess: KeyFileAccess = {
  readFile: (path) => readFileSync(path, "utf8"),
  mode: (path) => (process.platform === "win32" ? null : statSync(path).mode),
};

/**
 * The keys of a key file: one per line; blank lines and `#` comments (whole-line or after the key) are skipped;
 * whitespace around a key is trimmed. A line that is not a valid key is an error naming its line number (never its text).
 */
export function parseApiKeyFile(text: string, path: string): string[] {
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const hash = line.indexOf("#");
    const key = (hash >= 0 ? line.slice(0, hash) : line).trim();
    if (key === "") return;
    if (!API_KEY_PATTERN.test(key)) throw new ConfigError("apiKeyFile", `${path} line ${i + 1}: ${API_KEY_RULE}`);
    keys.push(key);
  });
  return keys;
}

interface ResolvedApiKeys {
  /** The configured keys and the file's keys, without duplicates. Empty: authentication is off. */
  keys: string[];
  /** For the log (a key file others can read). Never contains a key. */
  warnings: string[];
}

/**
 * All accepted keys: `apiKeys` plus the keys in `apiKeyFile`. A key file that cannot be read, or that holds no key,
 * is a ConfigError (the daemon must not start open by mistake); one that group or others can read is a warning.
 */
export function resolveApiKeys(config: Pick<SecurityConfig, "apiKeys" | "apiKeyFile">, files: KeyFileAccess = nodeKeyFileAccess): ResolvedApiKeys {
  const keys = new Set(config.apiKeys);
  const warnings: string[] = [];
  const path = config.apiKeyFile;
  if (path !== undefined) {
    let text: string;
    let mode: number | null;
    try {
      text = files.readFile(path);
      mode = files.mode(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError("apiKeyFile", `cannot read the API key file ${path}${code ? ` (${code})` : ""}`);
    }
    const fromFile = parseApiKeyFile(text, path);
    if (fromFile.length === 0) throw new ConfigError("apiKeyFile", `${path} holds no API key (one per line, # starts a comment)`);
    for (const key of fromFile) keys.add(key);
    if (mode !== null && (mode & 0o044) !== 0) {
      const who = (mode & 0o004) !== 0 ? "every user" : "its group";
      warnings.push(`The API key file ${path} can be read by ${who} (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    }
  }
  return { keys: [...keys], warnings };
}
