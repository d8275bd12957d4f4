import { engineNameSchema } from "../../core/detectionSchema.js";

/** `tabagent detect --help` (stdout), and on stderr when SOURCE is missing. */
export const DETECT_USAGE = `Usage: tabagent detect SOURCE... [--json] [--engine ENGINE] [--hub-url URL] [--no-probe | --data-dir DIR]

Classifies each SOURCE the way serve would before loading it, and prints per model found: format, task,
architecture, parameters, quantization, context length, the engine that would serve it and why, the other engines
that could, its files and any warnings. SOURCE is a model file, a folder (one model, or a folder of GGUF files:
one per model), or a Hugging Face repo owner/name[@revision][:file], read through HTTP range requests (headers
only, nothing downloaded; HF_TOKEN and HF_ENDPOINT are honoured). Local models are also tried for real: the chat
template rendered in its sandbox, and a GGUF's vocabulary opened by llama.cpp in a child process.

  --json                 the detections as JSON (one array for all SOURCEs)
  --engine ENGINE        check that ENGINE can serve each SOURCE, as a model's engine in the config would
                         (${engineNameSchema.options.join(", ")})
  --hub-url URL          the hub repo ids are read from (HF_ENDPOINT, default https://huggingface.co)
  --no-probe             detect from the files only: no template rendering, no llama.cpp child
  --data-dir DIR         where the llama.cpp probe's verdicts are kept, shared with serve (TABAGENT_DATA_DIR,
                         default ~/.local/share/tabagent); not with --no-probe
  -h, --help             this text

Exit 0 when every SOURCE was detected (a model no engine serves is still a detection, with the reason), 1 when
one could not be read, 2 for a usage error.
`;

/** `tabagent doctor --help`. */
export const DOCTOR_USAGE = `Usage: tabagent doctor [--json]

What this machine can run, without starting a daemon: Node.js and the platform; the CPU and the default thread
count; node-llama-cpp, whether its prebuilt CPU binary loads and which GPU \`gpu: auto\` would use; the llama-server
binaries (standard and BitNet), each place looked in and why it was skipped, and how to get a missing one; the
Python interpreter for transformers models and whether torch and transformers import (and see CUDA); and each
engine: ready, or why not. The lookups honour TABAGENT_LLAMA_SERVER, TABAGENT_LLAMA_SERVER_BITNET,
TABAGENT_RELEASE_DIR, TABAGENT_CACHE_DIR, TABAGENT_PYTHON, TABAGENT_DATA_DIR and PATH. Each probe stops after 20 s.

  --json                 the report as JSON
  -h, --help             this text

Exit 0 once the report is printed (what is missing is in the report, not the exit code), 2 for a usage error.
`;

/** `tabagent native-host --help`. */
export const NATIVE_HOST_USAGE = `Usage: tabagent native-host install --extension-id ID... [--browser B...] [--user | --system] [--dir DIR]
       tabagent native-host uninstall [--browser B...] [--user | --system] [--dir DIR]
       tabagent native-host status [--browser B...] [--json]

A native-messaging host lets a browser extension use the daemon over stdin/stdout (docs/native-messaging.md).
The browser starts it through the launcher that install writes; run by hand it refuses to serve.

  install                write the launcher and each browser's host manifest (com.tabagent.host) allowing the
                         extensions named; Windows: registry keys too
  uninstall              remove the manifests (and keys); the launcher goes with the last one
  status                 list each browser's manifest: installed or not, which extensions it allows
  --browser B            chrome, chromium, edge, brave, firefox or all (default all); repeatable
  --extension-id ID      Chrome family: the 32-letter extension id; Firefox: the add-on id (name@domain or
                         {GUID}); each browser gets the ids of its kind; repeatable
  --user                 the current user's browser folders (default)
  --system               every user's (needs root / administrator)
  --dir DIR              write the manifest into DIR instead (a NativeMessagingHosts folder of a custom profile);
                         one --browser
  --data-dir DIR         where the user launcher lives: DIR/native-host (TABAGENT_DATA_DIR,
                         default ~/.local/share/tabagent)
  --config FILE          the config the host reads to find the daemon (TABAGENT_CONFIG); also the one an
                         auto-started daemon gets (nativeHostAutoStart: true)
  --json                 the result as JSON
  -h, --help             this text

Exit 0 on success, 1 when nothing could be written, 2 for a usage error.
`;
