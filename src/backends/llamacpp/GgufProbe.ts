import { spawn } from "node:child_process";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";

export type GgufProbeResult = { ok: true } | { ok: false; reason: string };

export interface GgufProbeOptions {
  logger: Logger;
  /** Verdicts are kept here (JSON), keyed by the file's identity, so a file is probed once, not once per start. */
  cacheFile?: string;
  /** A probe that takes longer is killed and the file refused. Default 120 s (a vocabulary of a huge model on a slow disk). */
  timeoutMs?: number;
}

// CommonJS, run by `node -e`: opens the GGUF's vocabulary with the same native code the daemon would use, and
// turns every token into text and back, which is where a malformed vocabulary makes llama.cpp throw past its own
// error handling (std::out_of_range from byte_to_token, token_to_piece) and abort the process.
const PROBE_CODE = `
const settings = JSON.parse(process.env.TABAGENT_GGUF_PROBE);
(async () => {
  const { getLlama } = await import(settings.nodeLlamaCppUrl);
  const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, maxThreads: 1, logLevel: "error", logger: () => {} });
  const model = await llama.loadModel({ modelPath: settings.path, vocabOnly: true });
  const meta = model.fileInfo.metadata;
  const n = (meta && meta.tokenizer && meta.tokenizer.ggml && meta.tokenizer.ggml.tokens && meta.tokenizer.ggml.tokens.length) || 0;
  for (let id = 0; id < n; id++) model.detokenize([id], true);
  model.tokenize("Hello, world!\\n\\t 123 <s></s> \\u00e9\\u4e2d", true);
  model.tokenize("Hello, world!\\n", false);
  await model.dispose();
  process.stdout.write(JSON.stringify({ ok: true, vocabularySize: n }) + "\\n");
  process.exit(0);
})().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, reason: (err && err.message) || String(err) }) + "\\n");
  process.exit(0);
});
`;

const require = createRequire(import.meta.url);
const MAX_SAVED = 512;

/**
 * Opens a GGUF's vocabulary in a child process before the daemon loads it in-process. llama.cpp trusts a model
 * file in places (a vocabulary without the byte token it looks up aborts the process with std::out_of_range), and
 * in-process native code that aborts takes every model and client with it. The child costs about a second per file,
 * once: verdicts are cached by path, size, mtime and inode. A crash in the child becomes a refusal with the reason.
 */
export class GgufProbe {
  private readonly verdicts = new Map<string, Promise<GgufProbeResult>>();
  private saved: Record<string, GgufProbeResult> | null = null;

  constructor(private readonly options: GgufProbeOptions) {}

  async check(path: string, signal?: AbortSignal): Promise<GgufProbeResult> {
    const key = await fileKey(path);
    const known = this.verdicts.get(key);
    if (known) return known;
    const cached = (await this.loadSaved())[key];
    if (cached) return cached;
    const verdict = this.run(path, signal);
    this.verdicts.set(key, verdict);
    try {
      const result = await verdict;
      await this.save(key, result);
      return result;
    } catch (err) {
      this.verdicts.delete(key); // aborted or could not start: ask again next time
      throw err;
    }
  }

  private run(path: string, signal?: AbortSignal): Promise<GgufProbeResult> {
    const settings = { path, nodeLlamaCppUrl: pathToFileURL(require.resolve("node-llama-cpp")).href };
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["-e", PROBE_CODE], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NODE_OPTIONS: "", TABAGENT_GGUF_PROBE: JSON.stringify(settings) },
        signal,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout = (stdout + d.toString()).slice(-8192)));
      child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
      const timer = setTimeout(() => child.kill("SIGKILL"), this.options.timeoutMs ?? 120_000);
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on("close", (code, sig) => {
        clearTimeout(timer);
        if (signal?.aborted) return reject(signal.reason);
        const line = stdout.trim().split("\n").at(-1) ?? "";
        let result: GgufProbeResult;
        try {
          const parsed = JSON.parse(line) as { ok: boolean; reason?: string };
          result = parsed.ok ? { ok: true } : { ok: false, reason: `llama.cpp refused it: ${parsed.reason ?? "no reason given"}` };
        } catch {
          const why = nativeError(stderr);
          result = {
            ok: false,
            reason:
              sig === "SIGKILL" && Date.now() - started >= (this.options.timeoutMs ?? 120_000)
                ? "llama.cpp did not finish reading its vocabulary in time"
                : `llama.cpp crashed reading it (${sig ?? `exit ${code}`}${why ? `: ${why}` : ""}); the file is corrupt or not made for this llama.cpp version`,
          };
        }
        this.options.logger.debug({ path, ms: Date.now() - started, ok: result.ok }, "GGUF probed in a child process");
        resolve(result);
      });
    });
  }

  private async loadSaved(): Promise<Record<string, GgufProbeResult>> {
    if (this.saved) return this.saved;
    this.saved = Object.create(null) as Record<string, GgufProbeResult>;
    if (!this.options.cacheFile) return this.saved;
    try {
      const parsed: unknown = JSON.parse(await readFile(this.options.cacheFile, "utf8"));
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed)) {
          if (v && typeof v === "object" && ((v as GgufProbeResult).ok === true || typeof (v as { reason?: unknown }).reason === "string"))
            this.saved[k] = v as GgufProbeResult;
        }
      }
    } catch {
      // missing or unreadable: probe again
    }
    return this.saved;
  }

  private async save(key: string, result: GgufProbeResult): Promise<void> {
    const saved = await this.loadSaved();
    saved[key] = result;
    // Files come and go (and tests make many): the oldest verdicts make way.
    const keys = Object.keys(saved);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_SAVED))) delete saved[old];
    const file = this.options.cacheFile;
    if (!file) return;
    try {
      await mkdir(dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(saved));
      await rename(tmp, file);
    } catch (err) {
      this.options.logger.debug({ err, file }, "could not save GGUF probe verdicts");
    }
  }
}

/** The native exception's text (`what(): ...`) from the child's stderr. */
function nativeError(stderr: string): string | null {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const what = lines.find((l) => l.startsWith("what():"));
  const thrown = lines.find((l) => l.startsWith("terminate called"));
  if (thrown || what) return [thrown?.replace(/^terminate called after throwing an instance of /, ""), what?.replace(/^what\(\):\s*/, "")].filter(Boolean).join(": ");
  return lines.at(-1)?.slice(0, 300) ?? null;
}

let engineVersion: Promise<string> | null = null;

/** The probe's verdict holds for one file and one engine build. */
async function fileKey(path: string): Promise<string> {
  engineVersion ??= readFile(join(dirname(require.resolve("node-llama-cpp")), "..", "package.json"), "utf8").then(
    (text) => String((JSON.parse(text) as { version?: unknown }).version),
    () => "unknown",
  );
  const s = await stat(path);
  return `${path}|${s.size}|${Math.trunc(s.mtimeMs)}|${s.ino}|node-llama-cpp ${await engineVersion}`;
}
