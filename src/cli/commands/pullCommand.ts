import { loadConfig } from "../../config/loadConfig.js";
import { ConfigError, TabAgentError } from "../../core/errors.js";
import { parseCommandArgs, STORE_OPTIONS, storeFlags } from "./parseCommandArgs.js";

const USAGE = `Usage: tabagent pull owner/name[@revision][:file-or-quant]... [options]

Downloads a model from the Hugging Face hub into the store (the Hugging Face cache, shared with Python tools).
GGUF repos: one file, by the quantisation named (:Q4_K_M) or the preference order in docs/store.md.
Other repos: config, tokenizer and one weights format. Interrupted pulls resume; every file is hash-checked.

  --json               one JSON object per line (progress at most once a second)
  -q, --quiet          no progress, only the result
  --config FILE        config file (storeDir, hubUrl, hfTokenFile)
  --store-dir DIR      the store (TABAGENT_STORE_DIR; default HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)
  --hub-url URL        hub or mirror (HF_ENDPOINT; default https://huggingface.co)
  --hf-token-file F    a file holding the access token for gated/private repos (HF_TOKEN wins)
`;

/** `tabagent pull`: exit 0 when every source was pulled, 1 when one failed, 2 for bad usage, 130 on Ctrl-C. */
export async function pullCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs("pull", args, { ...STORE_OPTIONS, json: { type: "boolean" }, quiet: { type: "boolean", short: "q" } });
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const [{ pullModel }, { storeSettings }, { ProgressReporter, defaultProgressMode }, { formatBytes }] = await Promise.all([
    import("../../store/pullModel.js"),
    import("../../store/storeSettings.js"),
    import("../../store/ProgressReporter.js"),
    import("../../store/formatBytes.js"),
  ]);
  let settings;
  try {
    const config = loadConfig({ env, flags: storeFlags(values), file: typeof values.config === "string" ? values.config : undefined });
    settings = await storeSettings(config, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tabagent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const json = values.json === true;
  // Progress goes to stderr so stdout carries only results; --json puts everything on stdout.
  const stream = json ? process.stdout : process.stderr;
  // A pty may report 0 columns (script, some CI runners): fall back to $COLUMNS, then 80.
  const out = {
    write: (s: string) => stream.write(s),
    isTTY: stream.isTTY === true,
    get columns() {
      return stream.columns || Number(env.COLUMNS) || 80;
    },
  };
  const reporter = new ProgressReporter({ out, mode: defaultProgressMode(out, { json, quiet: values.quiet === true }) });
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    controller.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let failed = 0;
  try {
    for (const source of positionals) {
      try {
        const r = await pullModel({ source, ...settings, signal: controller.signal, onEvent: (e) => reporter.handle(e) });
        if (!json) {
          const how = r.fetchedBytes === 0 ? "already in the store" : `${formatBytes(r.fetchedBytes)} downloaded in ${r.seconds.toFixed(1)} s`;
          process.stdout.write(`${r.id ?? r.repo}  ${r.modelPath}  (${how})\n`);
        }
      } catch (err) {
        reporter.close();
        if (interrupted) {
          process.stderr.write(`tabagent pull: ${source}: interrupted; the partial download is kept, run the same pull again to resume\n`);
          return 130;
        }
        failed++;
        const message = err instanceof TabAgentError || err instanceof Error ? err.message : String(err);
        if (json) process.stdout.write(`${JSON.stringify({ type: "error", source, code: err instanceof TabAgentError ? err.code : null, message })}\n`);
        else process.stderr.write(`tabagent pull: ${source}: ${message}\n`);
      }
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return failed > 0 ? 1 : 0;
}
