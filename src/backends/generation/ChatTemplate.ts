import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ChatMessage } from "../../core/types.js";
import { specialTokenText } from "../onnx/OnnxTokenizer.js";

type Template = { render(items?: Record<string, unknown>): string };

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
    const named = value.filter((t): t is { name: string; template: string } => !!t && typeof t === "object" && typeof t.template === "string");
    return (named.find((t) => t.name === "default") ?? named[0])?.template ?? null;
  }
  return null;
}

/**
 * A Jinja chat template rendered to prompt text with @huggingface/jinja, the way transformers' `apply_chat_template`
 * and llama-server do: the whole prompt as one string, which the engine then tokenizes in one piece (special tokens
 * parsed), so every engine turns one conversation into the same ids. Special tokens (`bos_token`, `eos_token`, ...)
 * are template variables.
 */
export class ChatTemplate {
  private constructor(
    private readonly template: Template,
    private readonly variables: Record<string, unknown>,
  ) {}

  static async compile(source: string, variables: Record<string, unknown>): Promise<ChatTemplate> {
    const { Template } = await import("@huggingface/jinja");
    return new ChatTemplate(new Template(source), variables);
  }

  /**
   * A model folder's template: `override` (config `chatTemplate`), else chat_template.jinja (transformers 5 writes
   * it there), chat_template.json, then tokenizer_config.json's `chat_template`. Null when the folder has none.
   */
  static async load(dir: string, tokenizerConfig: Record<string, unknown>, override?: string): Promise<ChatTemplate | null> {
    let source = override ?? (await readText(join(dir, "chat_template.jinja")));
    if (source === null) {
      const json = await readText(join(dir, "chat_template.json"));
      if (json !== null) source = pickTemplate((JSON.parse(json) as Record<string, unknown>)["chat_template"]);
    }
    source ??= pickTemplate(tokenizerConfig["chat_template"]);
    if (source === null) return null;
    const variables: Record<string, unknown> = {};
    for (const name of ["bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"]) {
      const text = specialTokenText(tokenizerConfig[name]);
      if (text !== null) variables[name] = text;
    }
    return ChatTemplate.compile(source, variables);
  }

  /**
   * The prompt text. A conversation that ends with an assistant message is continued (the text stops right after
   * that message's content, as transformers' `continue_final_message` does); otherwise an assistant turn is opened.
   */
  render(messages: readonly ChatMessage[]): string {
    const last = messages.at(-1);
    const continueFinal = last?.role === "assistant";
    const rendered = this.template.render({
      ...this.variables,
      messages: messages.map((m) => ({ role: m.role, content: m.content, ...(m.name ? { name: m.name } : {}) })),
      add_generation_prompt: !continueFinal,
    });
    if (!continueFinal || last.content === "") return rendered;
    const at = rendered.lastIndexOf(last.content);
    return at < 0 ? rendered : rendered.slice(0, at + last.content.length);
  }
}
