import { readFileSync } from "node:fs";
import { parseDocument as parseYamlDocument } from "yaml";
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError } from "../core/errors.js";
import { configSchema, MODEL_ID_PATTERN, type Config, type ModelEntry } from "./configSchema.js";
import { parseBooleanSetting, SECURITY_SETTINGS } from "../server/security/securitySchema.js";

/** Where each setting can come from, for error messages that say what to fix. */
interface SettingSpec {
  key: keyof Config;
  env: string;
  flag: string;
  kind: "string" | "int" | "models" | "paths" | "gpuLayers" | "upstreams" | "boolean";
}

export const SETTINGS: readonly SettingSpec[] = [
  { key: "host", env: "TABAGENT_HOST", flag: "--host", kind: "string" },
  { key: "port", env: "TABAGENT_PORT", flag: "--port", kind: "int" },
  { key: "models", env: "TABAGENT_MODELS", flag: "--model", kind: "models" },
  { key: "modelsDirs", env: "TABAGENT_MODELS_DIR", flag: "--models-dir", kind: "paths" },
  { key: "threads", env: "TABAGENT_THREADS", flag: "--threads", kind: "int" },
  { key: "contextSize", env: "TABAGENT_CONTEXT_SIZE", flag: "--context-size", kind: "int" },
  { key: "parallel", env: "TABAGENT_PARALLEL", flag: "--parallel", kind: "int" },
  { key: "queueSize", env: "TABAGENT_QUEUE_SIZE", flag: "--queue-size", kind: "int" },
  { key: "idleTtlSeconds", env: "TABAGENT_IDLE_TTL", flag: "--idle-ttl", kind: "int" },
  { key: "bodyLimitBytes", env: "TABAGENT_BODY_LIMIT", flag: "--body-limit", kind: "int" },
  { key: "maxTokensCap", env: "TABAGENT_MAX_TOKENS", flag: "--max-tokens", kind: "int" },
  { key: "maxMessages", env: "TABAGENT_MAX_MESSAGES", flag: "--max-messages", kind: "int" },
  { key: "maxInflight", env: "TABAGENT_MAX_INFLIGHT", flag: "--max-inflight", kind: "int" },
  { key: "requestTimeoutSeconds", env: "TABAGENT_REQUEST_TIMEOUT", flag: "--request-timeout", kind: "int" },
  { key: "idleTimeoutSeconds", env: "TABAGENT_IDLE_TIMEOUT", flag: "--idle-timeout", kind: "int" },
  { key: "shutdownGraceSeconds", env: "TABAGENT_SHUTDOWN_GRACE", flag: "--shutdown-grace", kind: "int" },
  { key: "logLevel", env: "TABAGENT_LOG_LEVEL", flag: "--log-level", kind: "string" },
  { key: "metrics", env: "TABAGENT_METRICS", flag: "--metrics", kind: "boolean" },
  { key: "gpu", env: "TABAGENT_GPU", flag: "--gpu", kind: "string" },
  { key: "gpuLayers", env: "TABAGENT_GPU_LAYERS", flag: "--gpu-layers", kind: "gpuLayers" },
  { key: "upstreams", env: "TABAGENT_UPSTREAMS", flag: "--upstream", kind: "upstreams" },
  { key: "python", env: "TABAGENT_PYTHON", flag: "--python", kind: "string" },
  { key: "pythonAutoSetup", env: "TABAGENT_PYTHON_AUTO_SETUP", flag: "--python-auto-setup", kind: "boolean" },
  { key: "dataDir", env: "TABAGENT_DATA_DIR", flag: "--data-dir", kind: "string" },
  { key: "stallTimeoutSeconds", env: "TABAGENT_STALL_TIMEOUT", flag: "--stall-timeout", kind: "int" },
  // Model store (src/store): HF_ENDPOINT is the variable Hugging Face's own tools read.
  { key: "storeDir", env: "TABAGENT_STORE_DIR", flag: "--store-dir", kind: "string" },
  { key: "hubUrl", env: "HF_ENDPOINT", flag: "--hub-url", kind: "string" },
  { key: "hfTokenFile", env: "TABAGENT_HF_TOKEN_FILE", flag: "--hf-token-file", kind: "string" },
  { key: "discover", env: "TABAGENT_DISCOVER", flag: "--discover", kind: "paths" },
  { key: "preload", env: "TABAGENT_PRELOAD", flag: "--preload", kind: "paths" },
  { key: "maxLoadedModels", env: "TABAGENT_MAX_LOADED_MODELS", flag: "--max-loaded-models", kind: "int" },
  { key: "memoryBudget", env: "TABAGENT_MEMORY_BUDGET", flag: "--memory-budget", kind: "string" },
  // Exposure and auth (src/server/security): lists are comma separated in the environment.
  ...SECURITY_SETTINGS.map((s) => ({ key: s.key, env: s.env, flag: s.flag, kind: s.kind === "list" ? ("paths" as const) : s.kind })),
];

/** `NAME=URL`, or a preset name alone (`lmstudio`, `ollama`, `vllm`). */
export function parseUpstreamSpec(spec: string): { name: string; baseUrl?: string } {
  const eq = spec.indexOf("=");
  return eq > 0 ? { name: spec.slice(0, eq), baseUrl: spec.slice(eq + 1) } : { name: spec };
}

/** Raw string values as they arrive from flags (repeatable ones as arrays) or the environment. */
export type RawSettings = Partial<Record<keyof Config, string | string[]>>;

/** `ID=PATH` or `PATH`; text before `=` counts as an id only if it is a valid one (paths may contain `=`). */
export function parseModelSpec(spec: string): ModelEntry {
  const eq = spec.indexOf("=");
  if (eq > 0 && MODEL_ID_PATTERN.test(spec.slice(0, eq))) return { id: spec.slice(0, eq), path: spec.slice(eq + 1) };
  return { path: spec };
}

function convert(spec: SettingSpec, value: string | string[], source: string): unknown {
  const values = Array.isArray(value) ? value : [value];
  const one = values[values.length - 1] ?? "";
  switch (spec.kind) {
    case "string":
      return one;
    case "int":
      // Strict: "8080" yes; "8080abc", "1e3", "" no. Invalid text is passed on so zod reports it.
      return /^-?\d+$/.test(one.trim()) ? Number(one.trim()) : one;
    case "gpuLayers":
      return /^\d+$/.test(one.trim()) ? Number(one.trim()) : one;
    case "models":
      return splitList(values, source).map(parseModelSpec);
    case "paths":
      return splitList(values, source);
    case "upstreams":
      return splitList(values, source).map(parseUpstreamSpec);
    case "boolean":
      return parseBooleanSetting(one);
  }
}

/** Env lists are comma separated; repeated flags are already a list. */
function splitList(values: string[], source: string): string[] {
  if (source === "flag") return values;
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0);
}

export interface LoadConfigInput {
  env?: NodeJS.ProcessEnv;
  flags?: RawSettings;
  /** A JSON config file (`--config`, `TABAGENT_CONFIG`): applied after defaults, before env and flags. */
  file?: string;
  /** Programmatic values (tests, embedding); applied after defaults, before env. */
  base?: Partial<Record<keyof Config, unknown>>;
}

/** YAML for `.yaml`/`.yml` files, JSON otherwise; YAML errors carry their line and column. */
function parseConfigText(path: string, text: string): unknown {
  if (!/\.ya?ml$/i.test(path)) return JSON.parse(text);
  const doc = parseYamlDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) throw new Error((first.message.split("\n")[0] ?? "").replace(/:$/, ""));
  return doc.toJS({ maxAliasCount: 100 });
}

/**
 * Reads a config file, JSON or YAML (by extension): the same settings as the flags, in their schema names
 * (`port`, `models`, `idleTtlSeconds`, ...). Relative paths are relative to the file.
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseConfigText(path, readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError("config", `cannot read ${path}: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("config", `${path} must hold a ${/\.ya?ml$/i.test(path) ? "YAML mapping" : "JSON object"}`);
  }
  const out = { ...(parsed as Record<string, unknown>) };
  const base = dirname(resolve(path));
  const rel = (p: unknown) => (typeof p === "string" && !isAbsolute(p) ? resolve(base, p) : p);
  if (Array.isArray(out.models)) {
    out.models = out.models.map((m: unknown) => (m && typeof m === "object" && !Array.isArray(m) ? { ...m, path: rel((m as { path?: unknown }).path) } : m));
  }
  if (Array.isArray(out.modelsDirs)) out.modelsDirs = out.modelsDirs.map(rel);
  for (const key of ["apiKeyFile", "storeDir", "hfTokenFile", "lmstudioDir", "ollamaDir"]) if (typeof out[key] === "string") out[key] = rel(out[key]);
  return out;
}

/** defaults < base < config file < env (TABAGENT_*) < flags, validated by one schema. Throws ConfigError naming the setting. */
export function loadConfig({ env = {}, flags = {}, base = {}, file }: LoadConfigInput = {}): Config {
  const merged: Record<string, unknown> = { ...base };
  const origin: Record<string, string> = {};
  const configFile = file ?? (env.TABAGENT_CONFIG || undefined);
  if (configFile) {
    for (const [key, value] of Object.entries(readConfigFile(configFile))) {
      merged[key] = value;
      origin[key] = configFile;
    }
  }
  for (const spec of SETTINGS) {
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== "") {
      merged[spec.key] = convert(spec, fromEnv, "env");
      origin[spec.key] = spec.env;
    }
    const fromFlag = flags[spec.key];
    if (fromFlag !== undefined) {
      merged[spec.key] = convert(spec, fromFlag, "flag");
      origin[spec.key] = spec.flag;
    }
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = String(issue?.path[0] ?? "config");
    const where = origin[key] ? ` (from ${origin[key]})` : "";
    // The key path as a user would write it: models[0].contextSize
    const keyPath = (issue?.path ?? [key]).map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
    const value = merged[key];
    const shown = typeof value === "string" ? `; got "${value}"` : "";
    throw new ConfigError(`${keyPath}${where}`, `${issue?.message ?? "invalid"}${shown}`);
  }
  return result.data;
}
