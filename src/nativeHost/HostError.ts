/** An error answered to the browser as `{id, ok: false, error: {code, message, ...}}`. */
export class HostError extends Error {
  readonly code: string;
  /** The daemon's HTTP status, when the error is the daemon's. */
  readonly status: number | undefined;
  /** The request field at fault, when one is. */
  readonly param: string | undefined;

  constructor(code: string, message: string, options: { status?: number; param?: string } = {}) {
    super(message);
    this.name = "HostError";
    this.code = code;
    this.status = options.status;
    this.param = options.param;
  }

  toWire(): { code: string; message: string; status?: number; param?: string } {
    return {
      code: this.code,
      message: this.message,
      ...(this.status === undefined ? {} : { status: this.status }),
      ...(this.param === undefined ? {} : { param: this.param }),
    };
  }
}
