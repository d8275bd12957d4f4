/**
 * Turns a token stream into text pieces without ever splitting a multi-byte character: tokens whose text so far
 * ends in an incomplete UTF-8 sequence (decoded as U+FFFD) are held until the character completes.
 */
export class StreamingDetokenizer<Token> {
  private pending: Token[] = [];
  private context: Token[] = [];

  constructor(
    /** Detokenizes `tokens` given the tokens before them (SentencePiece needs them for leading spaces). */
    private readonly detokenize: (tokens: readonly Token[], lastTokens: readonly Token[]) => string,
    /** A UTF-8 character is at most 4 bytes; past this many held tokens the replacement is genuine. */
    private readonly maxPending = 8,
    private readonly contextTokens = 16,
  ) {}

  push(token: Token): string {
    this.pending.push(token);
    const text = this.detokenize(this.pending, this.context);
    if (text.endsWith("\uFFFD") && this.pending.length < this.maxPending) return "";
    this.commit();
    return text;
  }

  /** Whatever is still held (an incomplete character at the end of generation). */
  flush(): string {
    if (this.pending.length === 0) return "";
    const text = this.detokenize(this.pending, this.context);
    this.commit();
    return text;
  }

  private commit(): void {
    this.context = [...this.context, ...this.pending].slice(-this.contextTokens);
    this.pending = [];
  }
}
