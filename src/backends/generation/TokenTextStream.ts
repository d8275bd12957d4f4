import { StopSequenceMatcher, type StopMatch } from "./StopSequenceMatcher.js";
import { StreamingDetokenizer } from "./StreamingDetokenizer.js";

/**
 * Generated tokens to the text a client sees: stateful detokenization (no split characters), then stop sequences
 * (text that may start one is held back; a complete one ends the answer). One object per generation.
 */
export class TokenTextStream<Token> {
  private readonly detok: StreamingDetokenizer<Token>;
  private readonly stops: StopSequenceMatcher;
  private stopped = false;

  constructor(detokenize: ConstructorParameters<typeof StreamingDetokenizer<Token>>[0], stop: readonly string[]) {
    this.detok = new StreamingDetokenizer<Token>(detokenize);
    this.stops = new StopSequenceMatcher(stop);
  }

  /** The text this token makes visible; `stopped` once a stop sequence completed (the text is cut before it). */
  push(token: Token): StopMatch {
    const match = this.stops.push(this.detok.push(token));
    if (match.stopped) this.stopped = true;
    return match;
  }

  /** When the engine has ended: what was held back (a stop sequence completed by it still counts as a stop). */
  end(): StopMatch {
    if (this.stopped) return { text: "", stopped: true };
    const tail = this.stops.push(this.detok.flush());
    return tail.stopped ? tail : { text: tail.text + this.stops.flush(), stopped: false };
  }
}
