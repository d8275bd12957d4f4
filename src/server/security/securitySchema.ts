import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "../../core/errors.js";
import { normalizeHostEntry } from "./createHostPolicy.js";
import { normalizeOrigin } from "./createOriginPolicy.js";

/**
 * API keys travel in an `Authorization: Bearer` header and in comma-separated env lists, so they are visible ASCII
 * without spaces or commas. 16 characters is the floor: shorter keys are guessable over a network.
 */
export const API_KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]{16,512}$/;
const API_KEY_RULE = "API keys are 16 to 512 visible ASCII characters, without spaces or commas";

export const apiKeySchema = z.string().regex(API_KEY_PATTERN, API_KEY_RULE);

/**
 * The security settings, as a shape the lead spreads into `configSchema` (`z.strictObject({...rest, ...securityConfigShape})`).
 * Every field has a default, so existing configs stay valid and the defaults are the safe ones: loopback only, no CORS.
 */
export const securityConfigShape = {
  /** Accepted bearer keys (`--api-key`, repeatable; `TABAGENT_API_KEYS`, comma separated). Empty + no file = auth off. */
  apiKeys: z.array(apiKeySchema).max(1024).default([]),
  /** A file with one key per line, `#` comments (`--api-key-file`, `TABAGENT_API_KEY_FILE`). Adds to `apiKeys`. */
  apiKeyFile: z.string().min(1).optional(),
  /** Allow a non-loopback bind without any key (`--insecure-no-auth`, `TABAGENT_INSECURE_NO_AUTH=1`). */
  insecureNoAuth: z.boolean().default(false),
  /**
   * Extra names the `Host` header may carry, beyond the loopback names and the bind address (`--allowed-host`,
   * repeatable; `TABAGENT_ALLOWED_HOSTS`). Host names or IP literals, any port; `*` turns the check off.
   */
  allowedHosts: z
    .array(
      z.string().transform((value, ctx) => {
        const normalized = normalizeHostEntry(value);
        if (normalized === null) {
          ctx.addIssue({ code: "custom", message: `'${value}' is not a host name, an IP address or '*'` });
          return z.NEVER;
        }
        return normalized;
      }),
    )
    .max(1024)
    .default([]),
  /**
   * Origins that may call the API from a browser (`--cors-origin`, repeatable; `TABAGENT_CORS_ORIGINS`): exact
   * origins (`https://app.example.com`, `http://localhost:3000`), extension origins (`chrome-extension://<id>`), or
   * `*` for every http(s) origin. Extension origins are never matched by `*`. Empty: CORS off.
   */
  corsOrigins: z
    .array(
      z.string().transform((value, ctx) => {
        const normalized = normalizeOrigin(value);
        if (normalized === null) {
          ctx.addIssue({ code: "custom", message: `'${value}' is not an origin (scheme://host[:port], no path) or '*'` });
          return z.NEVER;
        }
        return normalized;
      }),
    )
    .max(1024)
    .default([]),
};

const securityConfigSchema = z.object(securityConfigShape);
export type SecurityConfig = z.infer<typeof securityConfigSchema>;

/** Where each security setting comes from, in the form of loadConfig's SETTINGS table (for the lead to merge). */
export const SECURITY_SETTINGS = [
  { key: "apiKeys", env: "TABAGENT_API_KEYS", flag: "--api-key", kind: "list" },
  { key: "apiKeyFile", env: "TABAGENT_API_KEY_FILE", flag: "--api-key-file", kind: "string" },
  { key: "insecureNoAuth", env: "TABAGENT_INSECURE_NO_AUTH", flag: "--insecure-no-auth", kind: "boolean" },
  { key: "allowedHosts", env: "TABAGENT_ALLOWED_HOSTS", flag: "--allowed-host", kind: "list" },
  { key: "corsOrigins", env: "TABAGENT_CORS_ORIGINS", flag: "--cors-origin", kind: "list" },
] as const satisfies readonly { key: keyof SecurityConfig; env: string; flag: string; kind: "list" | "string" | "boolean" }[];

/**
 * A boolean setting from the environment (`TABAGENT_INSECURE_NO_AUTH=1`): `1/true/yes/on` and `0/false/no/off`,
 * any case. Anything else is returned as is, so the schema rejects it naming the setting.
 */
export function parseBooleanSetting(value: string): boolean | string {
  const v = value.trim().toLowerCase();
  if (v === "1" || v === "true" || v === "yes" || v === "on") return true;
  if (v === "0" || v === "false" || v === "no" || v === "off") return false;
  return value;
}

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

export interface ResolvedApiKeys {
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
