import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "../core/errors.js";
import { configSchema, MODEL_ID_PATTERN, type Config, type ModelEntry } from "./configSchema.js";
import { copyConfigTree } from "./copyConfigTree.js";
import { formatKeyPath } from "./formatKeyPath.js";
import { nearestKey } from "./nearestKey.js";
import { isYamlConfigPath, parseConfigText } from "./parseConfigText.js";
import { parseBooleanSetting, SECURITY_SETTINGS } from "./securityConfigShape.js";

/** Where each setting can come from, for error messages that say what to fix. */
interface SettingSpec {
  key: keyof Config;
  env: string;
  flag: string;
  kind: "string" | "int" | "models" | "paths" | "gpuLayers" | "upstreams" | "boolean";
}

const SETTINGS: readonly SettingSpec[] = [
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
  { key: "ggufEngine", env: "TABAGENT_GGUF_ENGINE", flag: "--gguf-engine", kind: "string" },
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
function parseUpstreamSpec(spec: string): { name: string; baseUrl?: string } {
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
  return values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

interface LoadConfigInput {
  env?: NodeJS.ProcessEnv;
  flags?: RawSettings;
  /** A JSON config file (`--config`, `TABAGENT_CONFIG`): applied after defaults, before env and flags. */
  file?: string;
  /** Programmatic values (tests, embedding); applied after defaults, before env. */
  base?: Partial<Record<keyof Config, unknown>>;
}

/** A null-prototype record: assigning any key to it, `__proto__` included, only ever creates an own property. */
function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** `o[key]` when `o` itself holds `key`; never a value inherited from a prototype. */
function ownValue(o: object, key: PropertyKey): unknown {
  return Object.hasOwn(o, key) ? (o as Record<PropertyKey, unknown>)[key] : undefined;
}

/**
 * Reads a config file, JSON or YAML (by extension): the same settings as the flags, in their schema names
 * (`port`, `models`, `idleTtlSeconds`, ...). Relative paths are relative to the file. Every mapping in the result
 * is a null-prototype object; duplicate keys and `__proto__`/`constructor`/`prototype` keys are refused
 * (see parseConfigText).
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("config", `cannot read ${path}: ${(err as Error).message}`);
  }
  const parsed = parseConfigText(path, text);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("config", `${path} must hold a ${isYamlConfigPath(path) ? "YAML mapping" : "JSON object"}`);
  }
  const out = parsed as Record<string, unknown>;
  const base = dirname(resolve(path));
  const rel = (p: unknown) => (typeof p === "string" && !isAbsolute(p) ? resolve(base, p) : p);
  if (Array.isArray(out.models)) {
    out.models = out.models.map((m: unknown) =>
      m && typeof m === "object" && !Array.isArray(m) ? Object.assign(emptyRecord(), m, { path: rel((m as { path?: unknown }).path) }) : m,
    );
  }
  if (Array.isArray(out.modelsDirs)) out.modelsDirs = out.modelsDirs.map(rel);
  for (const key of ["apiKeyFile", "storeDir", "hfTokenFile", "lmstudioDir", "ollamaDir"]) if (typeof out[key] === "string") out[key] = rel(out[key]);
  return out;
}

/** A loaded config, or every reason the settings are invalid (each naming its key path and where it came from). */
export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

/**
 * defaults < base < config file < env (TABAGENT_*) < flags, validated by one schema. Throws ConfigError naming the
 * setting (the first problem; checkConfig lists them all). Merging happens in null-prototype records and reads only
 * own keys of env and flags, so no source can supply a setting through a prototype.
 */
export function loadConfig(input: LoadConfigInput = {}): Config {
  const result = checkConfig(input);
  if (!result.ok) throw result.errors[0]!;
  return result.config;
}

/**
 * loadConfig without the throw: the config, or every problem. A file that cannot be read or parsed is one error
 * (nothing after it can be checked); otherwise each schema issue is one, an unknown key named with the nearest
 * known one.
 */
export function checkConfig({ env = {}, flags = {}, base = {}, file }: LoadConfigInput = {}): ConfigResult {
  const merged = emptyRecord<unknown>();
  const origin = emptyRecord<string>();
  try {
    Object.assign(merged, copyConfigTree(base, "base settings"));
    const configFileEnv = ownValue(env, "TABAGENT_CONFIG");
    const configFile = file ?? ((typeof configFileEnv === "string" && configFileEnv) || undefined);
    if (configFile) {
      for (const [key, value] of Object.entries(readConfigFile(configFile))) {
        merged[key] = value;
        origin[key] = configFile;
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [err] };
    throw err;
  }
  for (const spec of SETTINGS) {
    const fromEnv = ownValue(env, spec.env) as string | undefined;
    if (fromEnv !== undefined && fromEnv !== "") {
      merged[spec.key] = convert(spec, fromEnv, "env");
      origin[spec.key] = spec.env;
    }
    const fromFlag = ownValue(flags, spec.key) as string | string[] | undefined;
    if (fromFlag !== undefined) {
      merged[spec.key] = convert(spec, fromFlag, "flag");
      origin[spec.key] = spec.flag;
    }
  }
  const result = configSchema.safeParse(merged);
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, errors: result.error.issues.flatMap((issue) => issueErrors(issue, merged, origin)) };
}

/** One schema issue as errors a user can act on: the key path as they would write it, where it came from, and why. */
function issueErrors(issue: z.core.$ZodIssue, merged: Record<string, unknown>, origin: Record<string, string>): ConfigError[] {
  const from = (key: string) => (origin[key] ? ` (from ${origin[key]})` : "");
  if (issue.code === "unrecognized_keys") {
    // One error per key, at the key itself (zod reports the object that holds them).
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      const near = nearestKey(key, known);
      const what = issue.path.length === 0 ? "unknown setting" : "unknown key";
      return new ConfigError(
        `${formatKeyPath(path)}${from(String(path[0]))}`,
        near ? `${what}; did you mean '${near}'?` : `${what} (the settings are listed in docs/configuration.md)`,
      );
    });
  }
  const key = String(issue.path[0] ?? "config");
  // The key path as a user would write it: models[0].contextSize
  const keyPath = formatKeyPath(issue.path.length > 0 ? issue.path : [key]);
  const value = merged[key];
  const shown = typeof value === "string" ? `; got "${value}"` : "";
  return [new ConfigError(`${keyPath}${from(key)}`, `${issue.message}${shown}`)];
}

/** The keys the schema knows for the mapping at `path` (`[]`: the settings; `["models", 0]`: a model entry's). */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let schema = unwrapSchema(configSchema);
  for (const segment of path) {
    if (schema instanceof z.ZodObject) {
      const next = (schema.shape as Record<string, z.ZodType | undefined>)[String(segment)];
      if (!next) return [];
      schema = unwrapSchema(next);
    } else if (schema instanceof z.ZodArray) schema = unwrapSchema(schema.element as z.ZodType);
    else if (schema instanceof z.ZodRecord) schema = unwrapSchema(schema.valueType as z.ZodType);
    else return [];
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** The schema under defaults, optionals and transforms (a preprocess's target, a transform's input). */
function unwrapSchema(schema: z.ZodType): z.ZodType {
  for (;;) {
    if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) schema = schema.unwrap() as z.ZodType;
    else if (schema instanceof z.ZodPipe) schema = (schema.in instanceof z.ZodTransform ? schema.out : schema.in) as z.ZodType;
    else return schema;
  }
}
