/**
 * A LiteRT container (TFLite FlatBuffer, `.task` ZIP, `.litertlm`) that cannot be read as one. `limit`: a read cap
 * stopped the check, so the file is unverified rather than shown to be broken.
 */
export class InvalidLiteRtError extends Error {
  constructor(
    message: string,
    readonly code: "invalid" | "limit" = "invalid",
  ) {
    super(message);
    this.name = "InvalidLiteRtError";
  }
}
