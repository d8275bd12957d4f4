import { transformersDetails } from "../../core/detectionSchema.js";
import { ModelNotServableError } from "../../core/errors.js";
import type { ModelDescriptor } from "../../core/types.js";
import { PythonSidecarBackend, type PythonSidecarBackendOptions } from "../python/PythonSidecarBackend.js";

export interface TransformersBackendOptions extends PythonSidecarBackendOptions {
  /** torch CPU threads. */
  threads: number;
  /** A Jinja chat template used instead of the tokenizer's (config `chatTemplate`). */
  chatTemplate?: string;
}

/**
 * A Hugging Face transformers folder (SafeTensors) served by the Python sidecar (native/python/tabagent_sidecar):
 * one supervised child per model, speaking a subset of the OpenAI API on a private Unix socket, proxied like
 * llama-server (see PythonSidecarBackend for what every Python engine shares).
 *
 * Unlike llama-server (one request per choice), a request with `n` > 1 goes to the sidecar whole, as OpenAIUpstream
 * sends it (`n`, `logprobs`, `top_logprobs`): the sidecar decodes the choices as one batch over the prompt's KV cache
 * and streams them interleaved by `index`, with the usage summed.
 */
export class TransformersBackend extends PythonSidecarBackend {
  protected readonly engine = "transformers";
  protected readonly module = "tabagent_sidecar";

  constructor(
    descriptor: ModelDescriptor,
    protected override readonly options: TransformersBackendOptions,
  ) {
    super(descriptor, options);
  }

  /**
   * Refusals that need no Python: the daemon answers them at once, and the sidecar would refuse them too. Decided by
   * detection's typed facts and the model's config, never by the wording of a warning.
   */
  protected override checkServable(): void {
    const { detection, engineOptions, id } = this.descriptor;
    const details = transformersDetails(detection);
    if (details?.needsCustomCode === true && engineOptions?.trustRemoteCode !== true) {
      const names = (details.autoMap ?? []).slice(0, 4);
      const what = names.length > 0 ? `auto_map names ${names.join(", ")}` : "its config has an auto_map";
      throw new ModelNotServableError(id, `it needs custom code (${what}); set trustRemoteCode: true in its config entry once you have read that code`);
    }
    // Detection never routes pickle weights here; a descriptor built by hand gets the sidecar's answer at once.
    if (detection.format === "pytorch") {
      throw new ModelNotServableError(
        id,
        "its weights are pickle files; the transformers engine loads safetensors only (pickle runs arbitrary code on load): convert them to safetensors",
      );
    }
  }

  protected moduleArgs(): string[] {
    const { engineOptions, task, path, id } = this.descriptor;
    return [
      "--model",
      path,
      "--id",
      id,
      "--task",
      task === "embeddings" || task === "rerank" ? task : "text-generation",
      "--threads",
      String(this.options.threads),
      "--device",
      engineOptions?.device ?? "auto",
      "--dtype",
      engineOptions?.dtype ?? "auto",
      ...(engineOptions?.trustRemoteCode === true ? ["--trust-remote-code"] : []),
      ...(this.options.chatTemplate ? ["--chat-template", this.options.chatTemplate] : []),
    ];
  }
}
