import { parseArgs, type ParseArgsConfig } from "node:util";
import { DEFAULT_DISCOVERY, DEFAULT_PORT, ggufEngineSchema } from "../config/configSchema.js";
import { loadConfig, type RawSettings } from "../config/loadConfig.js";
import { ConfigError } from "../core/errors.js";
import { createDaemon } from "../server/createDaemon.js";
import { installExitHandlers } from "../supervisor/installExitHandlers.js";
import { ProcessRegistry } from "../supervisor/ProcessRegistry.js";
import { createLogger } from "../server/createLogger.js";
import { packageVersion } from "../server/packageVersion.js";
import { engineNameSchema, type Detection } from "../core/detectionSchema.js";
import { detectSource } from "../detection/detectSource.js";
import { withGgufServingChoice } from "../engines/ggufServingEngine.js";
import { resolveGgufServingChoice } from "../store/buildServedRegistry.js";
import { setupCommand } from "./commands/setupCommand.js";
import { formatBytes } from "../store/formatBytes.js";
import { pullCommand } from "./commands/pullCommand.js";
import { lsCommand } from "./commands/lsCommand.js";
import { rmCommand } from "./commands/rmCommand.js";
import { configCommand } from "./commands/configCommand.js";
import { nativeHostCommand } from "./commands/nativeHostCommand.js";
import { DETECT_USAGE, DOCTOR_USAGE } from "./commands/helpTexts.js";
import { readFileSync, unlinkSync } from "node:fs";
import { defaultDataDir } from "../native/findPythonEnv.js";
import { lockDataDir, setAddress } from "../server/daemonLock.js";
import { explainListenError } from "../server/explainListenError.js";

const SERVE_OPTIONS = {
  host: { type: "string" },
  port: { type: "string", short: "p" },
  model: { type: "string", short: "m", multiple: true },
  "models-dir": { type: "string", multiple: true },
  threads: { type: "string", short: "t" },
  "context-size": { type: "string", short: "c" },
  parallel: { type: "string" },
  "queue-size": { type: "string" },
  "idle-ttl": { type: "string" },
  "body-limit": { type: "string" },
  "max-tokens": { type: "string" },
  "max-messages": { type: "string" },
  "max-inflight": { type: "string" },
  "request-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "shutdown-grace": { type: "string" },
  "log-level": { type: "string" },
  metrics: { type: "string" },
  gpu: { type: "string" },
  "gpu-layers": { type: "string" },
  "gguf-engine": { type: "string" },
  upstream: { type: "string", multiple: true },
  "api-key": { type: "string", multiple: true },
  "api-key-file": { type: "string" },
  "insecure-no-auth": { type: "boolean" },
  "allowed-host": { type: "string", multiple: true },
  "cors-origin": { type: "string", multiple: true },
  python: { type: "string" },
  "python-auto-setup": { type: "string" },
  "data-dir": { type: "string" },
  "stall-timeout": { type: "string" },
  config: { type: "string" },
  "store-dir": { type: "string" },
  "hub-url": { type: "string" },
  "hf-token-file": { type: "string" },
  discover: { type: "string", multiple: true },
  preload: { type: "string", multiple: true },
  "max-loaded-models": { type: "string" },
  "memory-budget": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** `models` takes serve's options (the same command line answers "what would this serve?") and its own two. */
const MODELS_OPTIONS = {
  ...SERVE_OPTIONS,
  json: { type: "boolean" },
  refresh: { type: "boolean" },
} as const satisfies ParseArgsConfig["options"];

const FLAG_TO_KEY: Record<string, keyof RawSettings> = {
  "store-dir": "storeDir",
  "hub-url": "hubUrl",
  "hf-token-file": "hfTokenFile",
  discover: "discover",
  preload: "preload",
  "max-loaded-models": "maxLoadedModels",
  "memory-budget": "memoryBudget",
  host: "host",
  port: "port",
  model: "models",
  "models-dir": "modelsDirs",
  threads: "threads",
  "context-size": "contextSize",
  parallel: "parallel",
  "queue-size": "queueSize",
  "idle-ttl": "idleTtlSeconds",
  "body-limit": "bodyLimitBytes",
  "max-tokens": "maxTokensCap",
  "max-messages": "maxMessages",
  "max-inflight": "maxInflight",
  "request-timeout": "requestTimeoutSeconds",
  "idle-timeout": "idleTimeoutSeconds",
  "shutdown-grace": "shutdownGraceSeconds",
  "log-level": "logLevel",
  metrics: "metrics",
  gpu: "gpu",
  "gpu-layers": "gpuLayers",
  "gguf-engine": "ggufEngine",
  upstream: "upstreams",
  "api-key": "apiKeys",
  "api-key-file": "apiKeyFile",
  "insecure-no-auth": "insecureNoAuth",
  "allowed-host": "allowedHosts",
  "cors-origin": "corsOrigins",
  python: "python",
  "python-auto-setup": "pythonAutoSetup",
  "data-dir": "dataDir",
  "stall-timeout": "stallTimeoutSeconds",
};

const HELP = `tabagent: a local inference daemon with an OpenAI-compatible API

Usage:
  tabagent serve  [options]   start the daemon
  tabagent models [options]   list the models that serve would expose, with serve's options
                              (--json for JSON; --refresh detects again)
  tabagent setup python [--cuda|--cpu] [--dev] [--data-dir DIR]
                              create the Python environment for transformers models
  tabagent pull owner/name[@revision][:file-or-quant]...
                              download a model from the Hugging Face hub into the store (docs/store.md)
  tabagent ls [--json] [--refresh]
                              models in the store and found elsewhere: id, format, task, size, engine, source, loaded
  tabagent rm ID...           remove a pulled model from the store (refused while a daemon has it loaded)
  tabagent config check [FILE]  validate a config file (YAML or JSON) without starting anything
  tabagent detect SOURCE...   classify models: a file, a folder, or a Hugging Face repo
                              (owner/name[@revision][:file]); --json for JSON, --engine E to check an override.
                              Remote detection reads only headers (HTTP range requests); HF_TOKEN and
                              HF_ENDPOINT (or --hub-url URL) are honoured. Local models are also tried: the chat
                              template rendered in its sandbox, a GGUF's vocabulary opened by llama.cpp in a child
                              (--no-probe: skip; verdicts kept under --data-dir DIR)
  tabagent native-host install --extension-id ID... [--browser B] [--user|--system]
                              let a browser extension use the daemon through native messaging (also
                              uninstall, status; docs/native-messaging.md)
  tabagent doctor [--json]    what this machine can run: node-llama-cpp and its GPU support, the llama-server
                              binaries (standard and BitNet) and where each was looked for, the Python interpreter
                              for transformers models, and whether each engine can run here
  tabagent --version          also -v
  tabagent COMMAND --help     the options of one command (-h)

Options of serve and models (each also as an environment variable, and as a key of the config file):
  --config FILE          YAML (.yaml, .yml) or JSON file with any of the settings below, by their names in
                         docs/configuration.md; models there may name an engine and have their own settings
                         (TABAGENT_CONFIG). Flags > env > file > defaults
  --host H               bind address (TABAGENT_HOST, default 127.0.0.1)
  -p, --port P           port, 0 = any free port (TABAGENT_PORT, default ${DEFAULT_PORT})
  -m, --model [ID=]PATH  serve a model (a GGUF, ONNX or other model file, or a model folder); id defaults to the
                         file name without its extension, or the folder name; repeatable
                         (TABAGENT_MODELS, comma separated)
  --models-dir DIR       serve every model in DIR: GGUF files and model folders; repeatable (TABAGENT_MODELS_DIR)
  -t, --threads N        CPU threads per model (TABAGENT_THREADS, default: half the logical CPUs, at least 1)
  -c, --context-size N   context tokens per request slot (TABAGENT_CONTEXT_SIZE, default 4096)
  --parallel N           concurrent requests per model (TABAGENT_PARALLEL, default 4)
  --queue-size N         requests waiting per model before 429 (TABAGENT_QUEUE_SIZE, default 64)
  --idle-ttl SECONDS     unload a model after this idle time, 0 = never (TABAGENT_IDLE_TTL, default 300)
  --body-limit BYTES     largest request body (TABAGENT_BODY_LIMIT, default 8388608)
  --max-tokens N         largest max_tokens a request may ask for (TABAGENT_MAX_TOKENS, default 32768)
  --max-messages N       most messages in a chat request (TABAGENT_MAX_MESSAGES, default 1024)
  --max-inflight N       requests running or queued across all models before 429 (TABAGENT_MAX_INFLIGHT, default 1024)
  --request-timeout S    a request must arrive within S seconds (TABAGENT_REQUEST_TIMEOUT, default 60)
  --idle-timeout S       close connections silent for S seconds (TABAGENT_IDLE_TIMEOUT, default 600)
  --shutdown-grace S     seconds in-flight requests get at shutdown (TABAGENT_SHUTDOWN_GRACE, default 30)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (TABAGENT_LOG_LEVEL, default info)
  --metrics on|off       Prometheus metrics and GET /metrics (TABAGENT_METRICS, default on)
  --gpu auto|off         use a GPU when node-llama-cpp finds one (TABAGENT_GPU, default auto)
  --gpu-layers auto|max|N  layers to offload (TABAGENT_GPU_LAYERS, default auto)
  --gguf-engine auto|node-llama-cpp|llama-server
                         engine for GGUF models whose entry names none (TABAGENT_GGUF_ENGINE, default auto:
                         generation on llama-server when a built one is found, else in process)
  --api-key KEY          require \`Authorization: Bearer KEY\`; repeatable (TABAGENT_API_KEYS, comma separated;
                         prefer the env or a key file: flags show up in \`ps\`)
  --api-key-file FILE    one key per line, # comments (TABAGENT_API_KEY_FILE)
  --insecure-no-auth     allow binding a non-loopback address without keys (TABAGENT_INSECURE_NO_AUTH)
  --allowed-host NAME    a Host header to accept besides loopback names; repeatable, * = any (TABAGENT_ALLOWED_HOSTS)
  --cors-origin ORIGIN   a browser origin allowed by CORS (https://app.example, chrome-extension://ID, *);
                         repeatable; off by default (TABAGENT_CORS_ORIGINS)
  --store-dir DIR        pulled models: the Hugging Face cache layout (TABAGENT_STORE_DIR; default HF_HUB_CACHE,
                         HF_HOME/hub, ~/.cache/huggingface/hub); see docs/store.md
  --hub-url URL          hub to pull from (HF_ENDPOINT, default https://huggingface.co)
  --hf-token-file FILE   a file holding a Hugging Face token for gated repos; HF_TOKEN wins (TABAGENT_HF_TOKEN_FILE)
  --discover SOURCE      where else models are found: store, lmstudio, ollama (repeatable; none = off;
                         TABAGENT_DISCOVER, default all three)
  --preload ID           load this model at start; repeatable (TABAGENT_PRELOAD)
  --max-loaded-models N  most models loaded at once, least recently used idle one unloaded first; 0 = no limit
                         (TABAGENT_MAX_LOADED_MODELS, default 0)
  --memory-budget SIZE   estimated memory of loaded models (8GiB, 512MB, bytes); 0 = no limit (TABAGENT_MEMORY_BUDGET)
  --upstream NAME[=URL]  also serve the models of an OpenAI-compatible server (URL up to /v1); presets:
                         lmstudio, ollama, vllm; repeatable (TABAGENT_UPSTREAMS, comma separated)
  --python PATH          the interpreter for transformers models (TABAGENT_PYTHON; default: the venv that
                         tabagent setup python made)
  --python-auto-setup true|false  create that venv on the first transformers request when there is none
                         (TABAGENT_PYTHON_AUTO_SETUP, default true)
  --data-dir DIR         Python venvs and GGUF probe verdicts (TABAGENT_DATA_DIR, default ~/.local/share/tabagent)
  --stall-timeout S      replace a child engine (llama-server, Python) whose generation is silent for S seconds
                         (TABAGENT_STALL_TIMEOUT, default 300)
  --json, --refresh      models only: JSON output; detect every model again
  -h, --help             this text

Config file only: onnxProviders, aliases, lmstudioDir, ollamaDir, upstreams' other fields and per-model settings
(docs/configuration.md).
`;

function toRawSettings(values: Record<string, unknown>): RawSettings {
  const raw: RawSettings = {};
  for (const [flag, key] of Object.entries(FLAG_TO_KEY)) {
    const v = values[flag];
    if (typeof v === "string" || Array.isArray(v)) raw[key] = v as string | string[];
    else if (v === true) raw[key] = "true";
  }
  return raw;
}

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--version" || command === "-v") {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (!command) {
    // No command is a usage error: the help goes to stderr, so a script piping stdout sees nothing.
    process.stderr.write(`tabagent: name a command\n\n${HELP}`);
    return 2;
  }
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === "detect") return detect(rest, env);
  if (command === "doctor") return doctor(rest, env);
  if (command === "setup") return setupCommand(rest, env);
  if (command === "pull") return pullCommand(rest, env);
  if (command === "ls") return lsCommand(rest, env);
  if (command === "rm") return rmCommand(rest, env);
  if (command === "config") return configCommand(rest, env);
  if (command === "native-host") return nativeHostCommand(rest, env);
  if (command !== "serve" && command !== "models") {
    process.stderr.write(`tabagent: unknown command '${command}'\n\n${HELP}`);
    return 2;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options: command === "models" ? MODELS_OPTIONS : SERVE_OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    const modelsOnly = command === "serve" && /'--(json|refresh)'/.test((err as Error).message) ? " (--json and --refresh are options of `tabagent models`)" : "";
    process.stderr.write(`tabagent ${command}: ${(err as Error).message}${modelsOnly}\nRun 'tabagent --help' for the options.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    const config = loadConfig({
      env,
      flags: toRawSettings(values),
      file: typeof values.config === "string" ? values.config : undefined,
      base: { discover: [...DEFAULT_DISCOVERY] },
    });
    if (command === "models") return await listModels(config, values.json === true, values.refresh === true, env);
    return await serve(config, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tabagent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

async function listModels(config: ReturnType<typeof loadConfig>, json: boolean, refresh: boolean, env: NodeJS.ProcessEnv): Promise<number> {
  // Configured models plus the discovered ones (store, LM Studio, Ollama), as serve lists them.
  const { registry } = await (await import("./commands/loadListing.js")).servedModels(config, env, refresh);
  const models = registry.list();
  if (json) {
    process.stdout.write(`${JSON.stringify(models, null, 2)}\n`);
    return 0;
  }
  if (models.length === 0) {
    process.stdout.write("No models configured. Use --model PATH or --models-dir DIR.\n");
    return 0;
  }
  const rows = [
    ["ID", "FORMAT", "TASK", "ENGINE", "ARCHITECTURE", "SIZE", "PATH"],
    ...models.map((m) => [m.id, m.detection.format, m.task, m.engine ?? "-", m.detection.architecture ?? "?", formatBytes(m.sizeBytes), m.path]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")}\n`);
  return 0;
}

async function serve(config: ReturnType<typeof loadConfig>, env: NodeJS.ProcessEnv): Promise<number> {
  // JSON lines for machines unless stdout is a terminal; the one line meant for a human is then plain text on stderr.
  const pretty = process.stdout.isTTY === true;
  const logger = createLogger({ level: config.logLevel, pretty });
  const dataDir = config.dataDir ?? defaultDataDir(env);
  const locked = await lockDataDir(dataDir);
  if (locked.kind === "held") {
    process.stderr.write(`tabagent: ${locked.message}\n`);
    return 1;
  }
  if (locked.kind === "unlockable") logger.warn(locked.warning);
  const lock = locked.kind === "locked" ? locked.lock : null;
  // Whatever ends the process, the lock goes with it (a SIGKILL's lock is taken over as stale by the next daemon).
  const dropLock = () => {
    try {
      // Only while the file is still this process's: a released lock may be another daemon's by now.
      if (lock && readFileSync(lock.file, "utf8").split("\n")[0] === String(process.pid)) unlinkSync(lock.file);
    } catch {
      /* already gone */
    }
  };
  process.once("exit", dropLock);
  const processes = new ProcessRegistry();
  // Children (llama-server, ...) die with the daemon, whatever ends it.
  installExitHandlers(processes);
  let daemon: Awaited<ReturnType<typeof createDaemon>>;
  try {
    daemon = await createDaemon({ config, logger, processes });
  } catch (err) {
    await lock?.release();
    throw err;
  }
  let url: string;
  try {
    ({ url } = await daemon.listen());
  } catch (err) {
    const message = await explainListenError(err, config.host, config.port);
    await daemon.close().catch(() => undefined);
    await lock?.release();
    if (message === null) throw err;
    process.stderr.write(`tabagent: ${message}\n`);
    return 1;
  }
  if (lock) await setAddress(lock, url).catch((err: unknown) => logger.warn({ err }, "could not record the address in the data folder's lock"));
  const ids = daemon.registry.list().map((m) => m.id);
  logger.info({ url, models: ids, threads: config.threads }, `tabagent listening on ${url}`);
  if (ids.length === 0) logger.warn("no models configured: pass --model PATH or --models-dir DIR");
  else {
    const chat = daemon.registry.list().find((m) => m.task === "chat") ?? daemon.registry.list()[0]!;
    const auth = config.apiKeys.length > 0 || config.apiKeyFile ? ` -H 'authorization: Bearer <your key>'` : "";
    const example =
      chat.task === "embeddings"
        ? `curl ${url}/v1/embeddings${auth} -H 'content-type: application/json' -d '{"model":"${chat.id}","input":"hello"}'`
        : `curl ${url}/v1/chat/completions${auth} -H 'content-type: application/json' -d '{"model":"${chat.id}","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'`;
    // Inside a JSON log line the quotes would come out escaped: not something to paste into a shell.
    if (pretty) logger.info(`try: ${example}`);
    else if (logger.isLevelEnabled("info")) process.stderr.write(`try: ${example}\n`);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "signal received");
      daemon.close().then(
        async () => {
          await lock?.release();
          resolve(0);
        },
        async (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          await lock?.release();
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

const DETECT_OPTIONS = {
  json: { type: "boolean" },
  "no-probe": { type: "boolean" },
  "data-dir": { type: "string" },
  engine: { type: "string" },
  "hub-url": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

async function detect(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: { json?: boolean; engine?: string; "hub-url"?: string; "no-probe"?: boolean; "data-dir"?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: DETECT_OPTIONS, strict: true, allowPositionals: true }));
  } catch (err) {
    process.stderr.write(`tabagent detect: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(DETECT_USAGE);
    return values.help ? 0 : 2;
  }
  if (values["no-probe"] && values["data-dir"] !== undefined) {
    // --data-dir only says where the probes' verdicts are kept: with no probe it would do nothing.
    process.stderr.write("tabagent detect: --data-dir keeps the probes' verdicts; it means nothing with --no-probe\n");
    return 2;
  }
  const engine = values.engine === undefined ? undefined : engineNameSchema.safeParse(values.engine);
  if (engine && !engine.success) {
    process.stderr.write(`tabagent detect: --engine must be one of ${engineNameSchema.options.join(", ")}\n`);
    return 2;
  }
  // Loaded only for this command: `serve` never needs the hub client.
  const { hubAccessFromEnv, hubOpener } = await import("../detection/openHubSource.js");
  const access = hubAccessFromEnv(env);
  const openRemote = hubOpener({ ...access, hubUrl: values["hub-url"] ?? access.hubUrl });
  const results: Detection[] = [];
  let failed = 0;
  const probe = values["no-probe"] ? null : await detectionProbe(values["data-dir"] ?? env.TABAGENT_DATA_DIR, env);
  const ggufEngine = ggufEngineSchema.safeParse(env.TABAGENT_GGUF_ENGINE ?? "auto");
  if (!ggufEngine.success) {
    process.stderr.write(`tabagent detect: TABAGENT_GGUF_ENGINE must be one of ${ggufEngineSchema.options.join(", ")}\n`);
    return 2;
  }
  // The same engine the daemon would pick on this machine (a built llama-server moves GGUF generation there).
  const ggufChoice = await resolveGgufServingChoice({ ggufEngine: ggufEngine.data }, env);
  for (const source of positionals) {
    try {
      const found = await detectSource(source, { openRemote, engineOverride: engine?.data });
      for (const d of found) results.push(withGgufServingChoice(probe ? await probe(d) : d, ggufChoice));
    } catch (err) {
      failed++;
      process.stderr.write(`tabagent detect: ${source}: ${(err as Error).message}\n`);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else for (const d of results) process.stdout.write(formatDetection(d));
  return failed > 0 ? 1 : 0;
}

/** Tries local models for real (see probeDetection), sharing the daemon's GGUF probe verdicts. */
async function detectionProbe(dataDir: string | undefined, env: NodeJS.ProcessEnv): Promise<(d: Detection) => Promise<Detection>> {
  const [{ probeDetection }, { defaultDataDir }, path, { pino }] = await Promise.all([
    import("./commands/probeDetection.js"),
    import("../native/findPythonEnv.js"),
    import("node:path"),
    import("pino"),
  ]);
  const options = { logger: pino({ level: "silent" }), probeCacheFile: path.join(dataDir ?? defaultDataDir(env), "gguf-probes.json") };
  return (d) => probeDetection(d, options);
}

function formatCount(n: number | null): string {
  if (n === null) return "?";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** A short human summary: one table row, then the reasons. */
export function formatDetection(d: Detection): string {
  const rows = [
    ["FORMAT", "TASK", "ARCHITECTURE", "PARAMS", "QUANT", "CONTEXT", "ENGINE"],
    [
      d.format,
      d.task,
      d.architecture ?? "?",
      formatCount(d.parameterCount),
      d.quantization ?? "?",
      d.contextLength === null ? "?" : String(d.contextLength),
      d.engine?.name ?? "none",
    ],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = [
    `${d.source}`,
    ...rows.map(
      (r) =>
        `  ${r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd()}`,
    ),
  ];
  lines.push(`  why:     ${d.reason}`);
  if (d.engine) lines.push(`  engine:  ${d.engine.name}: ${d.engine.reason}`);
  if (d.alternatives.length > 0) lines.push(`  also:    ${d.alternatives.join(", ")}`);
  const total = d.files.reduce((n, f) => n + (f.size ?? 0), 0);
  lines.push(`  files:   ${d.files.length} (${formatBytes(total)})${d.files.length <= 4 ? `: ${d.files.map((f) => `${f.path} [${f.role}]`).join(", ")}` : ""}`);
  for (const w of d.warnings) lines.push(`  warning: ${w}`);
  return `${lines.join("\n")}\n\n`;
}

async function doctor(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: { json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: false }));
  } catch (err) {
    process.stderr.write(`tabagent doctor: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  const { doctorReport, formatDoctorReport } = await import("../native/doctorReport.js");
  const report = await doctorReport({ env });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  return 0;
}
