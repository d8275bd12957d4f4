import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import { readFolderChatTemplate } from "../../backends/generation/ChatTemplate.js";
import { TemplateSandbox } from "../../backends/generation/TemplateSandbox.js";
import { GgufProbe } from "../../backends/llamacpp/GgufProbe.js";
import { withProbeDetails, type Detection, type ProbeDetails } from "../../core/detectionSchema.js";
import { openFileByteSource } from "../../detection/gguf/ByteSource.js";
import { readGgufHeader } from "../../detection/gguf/readGgufHeader.js";

const SAMPLE_CONVERSATION = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Hello!" },
  { role: "assistant", content: "Hi! How can I help?" },
  { role: "user", content: "Tell me a joke." },
];

interface ProbeDetectionOptions {
  logger: Logger;
  /** Where GGUF probe verdicts are kept (shared with the daemon). */
  probeCacheFile: string;
}

/**
 * What static detection cannot promise, tried for real on a local model: its chat template rendered in the
 * template sandbox (a template that hangs or exhausts memory is reported unusable), and for a GGUF that runs in
 * process, its vocabulary opened by llama.cpp in a child process (a file that aborts llama.cpp is not servable).
 */
export async function probeDetection(d: Detection, options: ProbeDetectionOptions): Promise<Detection> {
  const local = await stat(d.source).catch(() => null);
  if (!local) return d; // a hub repo: headers only, nothing to run
  const out: Detection = { ...d, warnings: [...d.warnings] };
  const probed: ProbeDetails = {};
  const isGguf = local.isFile() && (d.format === "gguf" || d.format === "bitnet-gguf");

  if (isGguf && d.engine?.name === "node-llama-cpp") {
    const verdict = await new GgufProbe({ logger: options.logger, cacheFile: options.probeCacheFile }).check(d.source);
    if (!verdict.ok) {
      out.engine = null;
      out.alternatives = out.alternatives.filter((e) => e !== "node-llama-cpp");
      out.warnings.push(`not servable in process: ${verdict.reason}`);
      probed.loadProbe = verdict.reason;
    }
  }

  if (d.hasChatTemplate) {
    const source = isGguf ? await ggufTemplate(d.source) : local.isDirectory() ? await folderTemplate(d.source) : null;
    if (source !== null) {
      const problem = await templateProblem(source);
      if (problem) {
        out.warnings.push(`chat template unusable: ${problem}; chat is refused, completions work`);
        probed.chatTemplateProblem = problem;
      }
    }
  }
  return withProbeDetails(out, probed);
}

async function templateProblem(source: string): Promise<string | null> {
  const sandbox = await TemplateSandbox.open(source);
  try {
    if (sandbox.problem) return sandbox.problem;
    await sandbox.render({ messages: SAMPLE_CONVERSATION, add_generation_prompt: true, bos_token: "", eos_token: "" }).catch(() => undefined);
    return sandbox.problem; // an error the template raises on purpose (roles it refuses) is not a problem of the template
  } finally {
    await sandbox.close();
  }
}

async function ggufTemplate(path: string): Promise<string | null> {
  const src = await openFileByteSource(path);
  try {
    const value = (await readGgufHeader(src)).metadata.get("tokenizer.chat_template");
    return typeof value === "string" ? value : null;
  } catch {
    return null;
  } finally {
    await src.close();
  }
}

/** The template an engine would use from a transformers/ONNX folder; unreadable JSON was detection's to report. */
async function folderTemplate(dir: string): Promise<string | null> {
  return readFolderChatTemplate(dir).catch(() => null);
}
