import { readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The methods of @huggingface/tokenizers' Tokenizer that OnnxTokenizer calls. The package's .d.ts files import each
 * other without file extensions, which NodeNext resolution does not follow, so its `Tokenizer` type resolves to
 * `any` here; the constructed tokenizer is cast to this interface once, where it is created, to keep every call typed.
 */
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(tokenIds: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  get_vocab(with_added_tokens: boolean): Map<string, number>;
}

type HfTokenizerConstructor = new (tokenizerJson: object, config: object) => HfTokenizer;

/** tokenizer_config.json names special tokens as a string or as a serialized AddedToken (`{content: ...}`). */
export function specialTokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return null;
}

function ids(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    const value: unknown = JSON.parse(await readFile(path, "utf8"));
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A model folder's tokenizer (tokenizer.json + tokenizer_config.json) through @huggingface/tokenizers, plus the
 * token ids that end generation (generation_config.json, config.json and the tokenizer's EOS).
 */
export class OnnxTokenizer {
  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** tokenizer_config.json (empty when the folder has none). */
    readonly config: Record<string, unknown>,
    /** Token ids that end generation. */
    readonly eosIds: ReadonlySet<number>,
  ) {}

  static async load(dir: string): Promise<OnnxTokenizer> {
    const tokenizerJson = await readJson(join(dir, "tokenizer.json"));
    if (!tokenizerJson) throw new Error(`no tokenizer.json in ${dir} (the ONNX engine reads Hugging Face tokenizer.json files)`);
    const config = (await readJson(join(dir, "tokenizer_config.json"))) ?? {};
    const Tokenizer = (await import("@huggingface/tokenizers")).Tokenizer as unknown as HfTokenizerConstructor; // see HfTokenizer
    const tokenizer = new Tokenizer(tokenizerJson, config);
    const eos = new Set<number>();
    const generation = await readJson(join(dir, "generation_config.json"));
    const modelConfig = await readJson(join(dir, "config.json"));
    for (const id of [...ids(generation?.["eos_token_id"]), ...ids(modelConfig?.["eos_token_id"])]) eos.add(id);
    const eosText = specialTokenText(config["eos_token"]);
    const eosId = eosText === null ? undefined : tokenizer.token_to_id(eosText);
    if (eosId !== undefined) eos.add(eosId);
    return new OnnxTokenizer(tokenizer, config, eos);
  }

  private vocabularySize: number | null = null;

  /** One more than the largest token id the tokenizer knows (added tokens included): ids given as input stay below. */
  get vocabSize(): number {
    if (this.vocabularySize === null) {
      let max = -1;
      for (const id of this.tokenizer.get_vocab(true).values()) if (id > max) max = id;
      this.vocabularySize = max + 1;
    }
    return this.vocabularySize;
  }

  /** `addSpecialTokens` applies the tokenizer's post-processor (BOS/CLS/SEP as the model was trained). */
  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /** Text of `tokens`; special tokens (end of turn, padding) are left out, as llama.cpp does. */
  decode(tokens: readonly number[]): string {
    return this.tokenizer.decode([...tokens], { skip_special_tokens: true });
  }

  /**
   * Text of `tokens` that follow `previous`: decoded together, so tokenizers that drop a word's leading space at the
   * start of a text (SentencePiece) keep it in the middle.
   */
  decodeAfter(tokens: readonly number[], previous: readonly number[]): string {
    if (previous.length === 0) return this.decode(tokens);
    const before = this.decode(previous);
    const all = this.decode([...previous, ...tokens]);
    return all.startsWith(before) ? all.slice(before.length) : this.decode(tokens);
  }

  private pieceTexts: string[] | null = null;

  /**
   * Each token's text on its own, as it reads in the middle of a text (decoded after an ordinary token, so a
   * SentencePiece word keeps its leading space): "" for special tokens, U+FFFD for a piece of a multi-byte character.
   * Computed once (about 5 µs a token), for constrained decoding (TokenMask).
   */
  pieces(): readonly string[] {
    if (this.pieceTexts === null) {
      const anchor = this.encode("a", false).slice(-1);
      this.pieceTexts = Array.from({ length: this.vocabSize }, (_, id) => this.decodeAfter([id], anchor));
    }
    return this.pieceTexts;
  }

  tokenId(text: string): number | undefined {
    return this.tokenizer.token_to_id(text);
  }

  specialToken(name: string): string | null {
    return specialTokenText(this.config[name]);
  }
}
