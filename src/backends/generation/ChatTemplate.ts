import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ChatMessage } from "../../core/types.js";
import { ChatTemplateError, InvalidRequestError } from "../../core/errors.js";
import { specialTokenText } from "../onnx/OnnxTokenizer.js";
import { TemplateRenderError, TemplateSandbox, TemplateUnusableError, type StopTriggerQuery, type TemplateSandboxOptions } from "./TemplateSandbox.js";

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** `chat_template` is a string, or a list of named templates of which `default` is the chat one. */
function pickTemplate(value: unknown): string | null {
  if (typeof value === "string" && value.length > 0) return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t: unknown): t is { name: unknown; template: string } => !!t && typeof t === "object" && typeof (t as { template?: unknown }).template === "string",
    );
    return (named.find((t) => t.name === "default") ?? named[0])?.template ?? null;
  }
  return null;
}

/**
 * A model folder's template source: chat_template.jinja (transformers 5 writes it there), chat_template.json, then
 * tokenizer_config.json's `chat_template` (read from the folder when not given). Null when the folder has none.
 */
export async function readFolderChatTemplate(dir: string, tokenizerConfig?: Record<string, unknown>): Promise<string | null> {
  const jinja = await readText(join(dir, "chat_template.jinja"));
  if (jinja !== null) return jinja;
  const json = await readText(join(dir, "chat_template.json"));
  if (json !== null) {
    const picked = pickTemplate((JSON.parse(json) as Record<string, unknown>)["chat_template"]);
    if (picked !== null) return picked;
  }
  const config = tokenizerConfig ?? (JSON.parse((await readText(join(dir, "tokenizer_config.json"))) ?? "{}") as Record<string, unknown>);
  return pickTemplate(config["chat_template"]);
}

/** The model a template belongs to: named in errors, told once the template proves unusable. */
export interface TemplateOwner {
  modelId: string;
  onUnusable?: (reason: string) => void;
  sandbox?: TemplateSandboxOptions;
}

/**
 * A Jinja chat template rendered to prompt text with @huggingface/jinja, the way transformers' `apply_chat_template`
 * and llama-server do: the whole prompt as one string, which the engine then tokenizes in one piece (special tokens
 * parsed), so every engine turns one conversation into the same ids. Special tokens (`bos_token`, `eos_token`, ...)
 * are template variables. Templates are untrusted code: they run in a TemplateSandbox (a worker with a deadline and a
 * bounded heap), and one that hangs, exhausts memory or does not compile leaves the model without chat, not the
 * daemon without a process; `problem` says why.
 */
export class ChatTemplate {
  private constructor(
    private readonly sandbox: TemplateSandbox,
    private readonly variables: Record<string, unknown>,
    private readonly owner: TemplateOwner,
  ) {}

  static async compile(source: string, variables: Record<string, unknown>, owner: TemplateOwner): Promise<ChatTemplate> {
    const template = new ChatTemplate(await TemplateSandbox.open(source, owner.sandbox), variables, owner);
    if (template.problem) owner.onUnusable?.(template.problem);
    return template;
  }

  /** Null while the template works; else why chat cannot use it. */
  get problem(): string | null {
    return this.sandbox.problem;
  }

  /** A model folder's template: `override` (config `chatTemplate`), else readFolderChatTemplate's. Null when none. */
  static async load(dir: string, tokenizerConfig: Record<string, unknown>, owner: TemplateOwner, override?: string): Promise<ChatTemplate | null> {
    const source = override ?? (await readFolderChatTemplate(dir, tokenizerConfig));
    if (source === null) return null;
    const variables: Record<string, unknown> = {};
    for (const name of ["bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"]) {
      const text = specialTokenText(tokenizerConfig[name]);
      if (text !== null) variables[name] = text;
    }
    return ChatTemplate.compile(source, variables, owner);
  }

  /**
   * The prompt text. A conversation that ends with an assistant message is continued (the text stops right after
   * that message's content, as transformers' `continue_final_message` does); otherwise an assistant turn is opened.
   */
  async render(messages: readonly ChatMessage[], tools?: readonly object[]): Promise<string> {
    const last = messages.at(-1);
    const continueFinal = last?.role === "assistant" && !last.toolCalls?.length;
    let rendered: string;
    try {
      rendered = await this.sandbox.render({
        ...this.variables,
        messages: messages.map(messageForTemplate),
        ...(tools?.length ? { tools } : {}),
        add_generation_prompt: !continueFinal,
      });
    } catch (err) {
      if (err instanceof TemplateUnusableError) {
        this.owner.onUnusable?.(err.reason);
        throw new ChatTemplateError(this.owner.modelId, err.reason);
      }
      if (err instanceof TemplateRenderError) throw new InvalidRequestError(`The model's chat template failed: ${err.message}`, { param: "messages" });
      throw err;
    }
    if (!continueFinal || !last || last.content === "") return rendered;
    const at = rendered.lastIndexOf(last.content);
    return at < 0 ? rendered : rendered.slice(0, at + last.content.length);
  }

  /** node-llama-cpp's stop triggers for this template (LlamaText JSON); empty when it cannot read them. */
  async stopTriggers(query: StopTriggerQuery): Promise<unknown[]> {
    try {
      return await this.sandbox.stopTriggers(query);
    } catch (err) {
      if (err instanceof TemplateUnusableError || err instanceof TemplateRenderError) return [];
      throw err;
    }
  }

  close(): Promise<void> {
    return this.sandbox.close();
  }
}

/** A message as Hugging Face chat templates read it: tool calls with their arguments as an object, tool results with their call id. */
function messageForTemplate(m: ChatMessage): Record<string, unknown> {
  return {
    role: m.role,
    content: m.content,
    ...(m.name ? { name: m.name } : {}),
    ...(m.toolCalls?.length
      ? { tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: parseArguments(c.arguments) } })) }
      : {}),
    ...(m.toolCallId ? { tool_call_id: m.toolCallId } : {}),
  };
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
