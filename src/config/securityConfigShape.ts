import { z } from "zod";
import { normalizeHostEntry, normalizeOrigin } from "./normalizeSecurityEntries.js";

/**
 * API keys travel in an `Authorization: Bearer` header and in comma-separated env lists, so they are visible ASCII
 * without spaces or commas. 16 characters is the floor: shorter keys are guessable over a network.
 */
export const API_KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]{16,512}$/;
export const API_KEY_RULE = "API keys are 16 to 512 visible ASCII characters, without spaces or commas";

const apiKeySchema = z.string().regex(API_KEY_PATTERN, API_KEY_RULE);

/**
 * The security settings, as a shape `configSchema` spreads in (`z.strictObject({...rest, ...securityConfigShape})`).
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

export type SecurityConfig = z.output<z.ZodObject<typeof securityConfigShape>>;

/** Where each security setting comes from, in the form of loadConfig's SETTINGS table (which merges it). */
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
