import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/** Why a template cannot be used at all (it hangs, exhausts memory or does not compile), as opposed to one render failing. */
export class TemplateUnusableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "TemplateUnusableError";
  }
}

/** One render failed inside the template (`raise_exception`, an undefined attribute, ...): the input's fault. */
export class TemplateRenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateRenderError";
  }
}

export interface TemplateSandboxOptions {
  /** A render (or the stop-trigger reading) that takes longer marks the template unusable. Default 2 s. */
  timeoutMs?: number;
  /** The renderer process's JS heap; a template that needs more marks itself unusable. Default 128 MiB. */
  maxHeapMb?: number;
  /** Longer prompt text is refused (a template that multiplies its input). Default 16 Mi characters. */
  maxOutputChars?: number;
}

/** What node-llama-cpp needs to pick its chat wrapper for a GGUF: plain data, small arrays only. */
export interface StopTriggerQuery {
  /** A config override: read as a Jinja template, as node-llama-cpp's JinjaTemplateChatWrapper does. */
  override?: string;
  bosString?: string | null;
  filename?: string;
  metadata?: Record<string, unknown>;
}

type Reply = { id: number; ok: true; text?: string; triggers?: unknown[] } | { id: number; ok: false; message: string };

// CommonJS, run by `node -e` in the renderer process: the template is compiled there once and rendered per request,
// so the daemon never runs template code.
const RENDERER_CODE = `
const settings = JSON.parse(process.env.TABAGENT_TEMPLATE_SANDBOX);
process.on("disconnect", () => process.exit(0));
let compiled = Promise.reject(new Error("no template"));
compiled.catch(() => {});
process.on("message", async (msg) => {
  try {
    if (msg.op === "compile") {
      compiled = import(settings.jinjaUrl).then(({ Template }) => new Template(msg.source));
      compiled.catch(() => {});
      await compiled;
      process.send({ id: msg.id, ok: true });
    } else if (msg.op === "render") {
      const text = (await compiled).render(msg.context);
      if (text.length > settings.maxOutputChars) throw new Error("the rendered prompt is longer than " + settings.maxOutputChars + " characters");
      process.send({ id: msg.id, ok: true, text });
    } else if (msg.op === "stopTriggers") {
      const nlc = await import(settings.nodeLlamaCppUrl);
      const q = msg.query;
      const wrapper = q.override !== undefined
        ? new nlc.JinjaTemplateChatWrapper({ template: q.override })
        : nlc.resolveChatWrapper({ bosString: q.bosString ?? null, filename: q.filename, fileInfo: { metadata: q.metadata ?? {} }, warningLogs: false });
      const triggers = wrapper.generateContextState({ chatHistory: [] }).stopGenerationTriggers.map((t) => t.toJSON());
      process.send({ id: msg.id, ok: true, triggers });
    }
  } catch (err) {
    process.send({ id: msg.id, ok: false, message: (err && err.message) || String(err) });
  }
});
`;

const require = createRequire(import.meta.url);

/**
 * A chat template (someone else's file: untrusted code) compiled and rendered in a small node process of its own
 * with a bounded heap and a deadline. A template that loops for ever or allocates without end costs that process,
 * never the daemon: it is killed, the template is marked unusable with the reason, and later calls fail at once.
 * (A worker thread is not enough: V8 aborts the whole process when one large allocation passes a worker's heap cap.)
 */
export class TemplateSandbox {
  private child: ChildProcess | null = null;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private unusable: TemplateUnusableError | null = null;
  private readonly timeoutMs: number;
  private readonly maxHeapMb: number;
  private readonly maxOutputChars: number;

  private constructor(
    private readonly source: string,
    options: TemplateSandboxOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.maxHeapMb = options.maxHeapMb ?? 128;
    this.maxOutputChars = options.maxOutputChars ?? 16 * 1024 * 1024;
  }

  /** Compiles the template in its renderer; a template that does not compile comes back unusable, not thrown. */
  static async open(source: string, options: TemplateSandboxOptions = {}): Promise<TemplateSandbox> {
    const sandbox = new TemplateSandbox(source, options);
    try {
      await sandbox.call({ op: "compile", source });
    } catch (err) {
      if (err instanceof TemplateRenderError) sandbox.markUnusable(`it does not compile: ${err.message}`);
      else if (!(err instanceof TemplateUnusableError)) throw err;
    }
    return sandbox;
  }

  /** Null while the template works; else why it cannot be used. */
  get problem(): string | null {
    return this.unusable?.reason ?? null;
  }

  async render(context: Record<string, unknown>): Promise<string> {
    const reply = await this.call({ op: "render", context });
    return reply.text ?? "";
  }

  /** node-llama-cpp's stop triggers for this template, as LlamaText JSON (read in the renderer: it renders the template). */
  async stopTriggers(query: StopTriggerQuery): Promise<unknown[]> {
    const reply = await this.call({ op: "stopTriggers", query });
    return reply.triggers ?? [];
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = null;
    this.failAll(new TemplateUnusableError("the template sandbox was closed"));
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.ref(); // whoever awaits close() waits for the exit, so the process must not end before it
      child.kill("SIGKILL");
      await exited;
    }
  }

  private spawn(): ChildProcess {
    const settings = {
      maxOutputChars: this.maxOutputChars,
      jinjaUrl: pathToFileURL(require.resolve("@huggingface/jinja")).href,
      nodeLlamaCppUrl: pathToFileURL(require.resolve("node-llama-cpp")).href,
    };
    const child = spawn(process.execPath, [`--max-old-space-size=${this.maxHeapMb}`, "--stack-size=2048", "-e", RENDERER_CODE], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "advanced",
      env: { ...process.env, NODE_OPTIONS: "", TABAGENT_TEMPLATE_SANDBOX: JSON.stringify(settings) },
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    child.on("message", (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      p.resolve(reply);
      if (this.pending.size === 0) this.idle(child);
    });
    child.on("error", (err) => this.markUnusable(`its renderer process failed: ${err.message}`));
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.pending.size === 0) return;
      const reason = /heap out of memory|heap limit/.test(stderr)
        ? `rendering it needs more than ${this.maxHeapMb} MiB of memory`
        : `its renderer process ended while rendering (${signal ?? `exit ${code}`})`;
      this.markUnusable(reason);
    });
    this.idle(child);
    // Messages are handled in order: every later call finds the template compiled (or its compile error).
    child.send({ op: "compile", id: -1, source: this.source });
    return child;
  }

  /** An idle renderer never keeps the daemon's process alive. */
  private idle(child: ChildProcess): void {
    child.unref();
    child.channel?.unref();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  }

  private busy(child: ChildProcess): void {
    child.ref();
    child.channel?.ref();
  }

  private markUnusable(reason: string): void {
    this.unusable ??= new TemplateUnusableError(reason);
    this.failAll(this.unusable);
    const child = this.child;
    this.child = null;
    child?.kill("SIGKILL");
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private async call(message: Record<string, unknown>): Promise<Extract<Reply, { ok: true }>> {
    if (this.unusable) throw this.unusable;
    const child = (this.child ??= this.spawn());
    const id = this.next++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      // The deadline counts from the call: renders queue in one renderer, and a hung one holds up those behind it.
      const timer = setTimeout(() => this.markUnusable(`rendering it took more than ${this.timeoutMs} ms`), this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.busy(child); // work in flight keeps the daemon alive until it answers
      child.send({ ...message, id });
    });
    if (!reply.ok) throw new TemplateRenderError(reply.message);
    return reply;
  }
}
