import { parseArgs } from "node:util";
import { TabAgentError } from "../../core/errors.js";
import { setupPython } from "../../native/setupPython.js";

const USAGE = `Usage: tabagent setup python [--cuda | --cpu] [--dev] [--data-dir DIR]
       tabagent setup litert [--dev] [--data-dir DIR]

python: creates the Python virtual environment that runs transformers models (native/python/requirements.txt),
under the data folder ($TABAGENT_DATA_DIR, default ~/.local/share/tabagent). Instant when it already exists.
litert: the LiteRT engine's own venv (native/python/requirements-litert.txt: LiteRT-LM, no torch).
  --cuda   torch with CUDA (PyPI's Linux build; the default on Linux)
  --cpu    torch without CUDA, from PyTorch's CPU index (smaller download)
  --dev    also what tests, fixtures and benchmarks need (native/python/requirements-dev.txt)
`;

/** `tabagent setup python`: progress on stderr (pip's own output), the interpreter path on stdout. */
export async function setupCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { cuda: { type: "boolean" }, cpu: { type: "boolean" }, dev: { type: "boolean" }, "data-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (err) {
    process.stderr.write(`tabagent setup: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const what = positionals[0];
  if (positionals.length !== 1 || (what !== "python" && what !== "litert") || (values.cuda && values.cpu) || (what === "litert" && (values.cuda || values.cpu))) {
    const why =
      values.cuda && values.cpu
        ? "--cuda and --cpu exclude each other"
        : what === "litert" && positionals.length === 1
          ? "--cuda/--cpu choose the torch build of `setup python`"
          : "name what to set up: python or litert";
    process.stderr.write(`tabagent setup: ${why}\n\n${USAGE}`);
    return 2;
  }
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const python = await setupPython({
      env,
      venv: what === "litert" ? "litert" : "transformers",
      variant: values.cuda ? "cuda" : values.cpu ? "cpu" : undefined,
      dev: values.dev,
      dataDir: values["data-dir"] ?? env.TABAGENT_DATA_DIR,
      onLine: (line) => process.stderr.write(`${line}\n`),
      signal: controller.signal,
    });
    process.stdout.write(`${python}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`tabagent setup: ${err instanceof TabAgentError || err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
