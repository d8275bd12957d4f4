import type { Llama } from "node-llama-cpp";
import type { Logger } from "pino";

export interface LlamaProviderOptions {
  gpu: "auto" | "off";
  threads: number;
  logger: Logger;
}

/**
 * The one node-llama-cpp runtime of the process, created on first model load. node-llama-cpp is imported lazily
 * so a daemon that has loaded nothing stays small (the native addon alone is ~40 MB of RSS).
 */
export class LlamaProvider {
  private llama: Promise<Llama> | null = null;

  constructor(private readonly options: LlamaProviderOptions) {}

  get(): Promise<Llama> {
    this.llama ??= this.create().catch((err: unknown) => {
      this.llama = null;
      throw err;
    });
    return this.llama;
  }

  private async create(): Promise<Llama> {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const log = this.options.logger.child({ engine: "llama.cpp" });
    return getLlama({
      gpu: this.options.gpu === "off" ? false : "auto",
      build: "never",
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      // node-llama-cpp would start as many threads as logical CPUs; on small machines that is far slower.
      maxThreads: this.options.threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (!text) return;
        if (level === LlamaLogLevel.fatal || level === LlamaLogLevel.error) log.error(text);
        else if (level === LlamaLogLevel.warn) log.warn(text);
        else log.debug(text);
      },
    });
  }

  async dispose(): Promise<void> {
    const pending = this.llama;
    this.llama = null;
    if (pending) await (await pending.catch(() => null))?.dispose();
  }
}
