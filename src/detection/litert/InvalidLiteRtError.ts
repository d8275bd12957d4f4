/** A LiteRT container (TFLite FlatBuffer, `.task` ZIP, `.litertlm`) that cannot be read as one. */
export class InvalidLiteRtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidLiteRtError";
  }
}
