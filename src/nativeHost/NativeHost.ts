import type { Readable, Writable } from "node:stream";
import type { Logger } from "pino";
import type { DaemonClient } from "./DaemonClient.js";
import { FrameReader } from "./FrameReader.js";
import { HostError } from "./HostError.js";
import { HostMessageWriter, type HostMessage } from "./HostMessageWriter.js";
import { HOST_ACTIONS, type ActionContext, type ActionHandler } from "./hostActions.js";
import { MAX_INCOMING_BYTES } from "./nativeMessagingLimits.js";

type RequestId = string | number;

export interface NativeHostOptions {
  input: Readable;
  output: Writable;
  /** The running daemon, started when needed and allowed (see DaemonConnector). */
  daemon: (signal: AbortSignal) => Promise<DaemonClient>;
  /** Told when a request found the daemon gone, so the next one looks for (or starts) it again. */
  onDaemonUnavailable?: () => void;
  logger: Logger;
  version: string;
  hub?: { url: string | undefined; token: string | undefined };
  /** Default MAX_INCOMING_BYTES. */
  maxIncomingBytes?: number;
  /** Default MAX_OUTGOING_BYTES. */
  maxOutgoingBytes?: number;
  actions?: Record<string, ActionHandler>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Request ids: a string (1-256 characters) or a safe integer, echoed in every reply and event. */
function validId(id: unknown): id is RequestId {
  return (typeof id === "string" && id.length > 0 && id.length <= 256) || (typeof id === "number" && Number.isSafeInteger(id));
}

/**
 * The native-messaging host: reads the browser's frames, runs each request `{id, action, ...}` concurrently and
 * answers `{id, ok, result | error}` (with `{id, event, ...}` events before). Every bad frame gets an error reply
 * (with `id: null` when no id can be read) and the host keeps serving. `run` resolves once the browser has closed
 * stdin and every request still running has been cancelled and answered.
 */
export class NativeHost {
  readonly #options: NativeHostOptions;
  readonly #writer: HostMessageWriter;
  readonly #actions: Record<string, ActionHandler>;
  readonly #inflight = new Map<RequestId, { controller: AbortController; done: Promise<void> }>();
  /** Aborted when the browser goes away: every request's signal follows it. */
  readonly #connection = new AbortController();

  constructor(options: NativeHostOptions) {
    this.#options = options;
    this.#writer = new HostMessageWriter(options.output, { maxBytes: options.maxOutgoingBytes });
    this.#actions = options.actions ?? HOST_ACTIONS;
  }

  /** Requests in flight (for tests and the log). */
  get inflight(): number {
    return this.#inflight.size;
  }

  async run(): Promise<void> {
    const { input, logger } = this.#options;
    const reader = new FrameReader({ maxBytes: this.#options.maxIncomingBytes ?? MAX_INCOMING_BYTES });
    // The browser closing stdout (EPIPE) is the same as it leaving.
    this.#options.output.once("error", () => this.stop("the browser closed the pipe"));
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        for (const event of reader.push(chunk)) {
          if (event.kind === "oversize") {
            void this.#error(
              null,
              new HostError("message_too_large", `a message of ${event.length} bytes is over the host's limit of ${reader.maxBytes} bytes; it was skipped`),
            );
          } else this.#onFrame(event.body);
        }
        if (this.#connection.signal.aborted) break;
      }
    } catch (err) {
      logger.warn({ err }, "reading stdin failed");
    }
    const cut = reader.end();
    if (cut) {
      void this.#error(null, new HostError("truncated_message", `stdin ended inside a message (${cut.received} of ${cut.expected} bytes)`));
    }
    this.stop("stdin closed");
    await Promise.all([...this.#inflight.values()].map((r) => r.done));
    await this.#writer.flush();
  }

  /** Cancels every request (their replies say so) and stops reading. */
  stop(reason: string): void {
    if (this.#connection.signal.aborted) return;
    if (this.#inflight.size > 0) this.#options.logger.info({ requests: this.#inflight.size, reason }, "cancelling the requests in flight");
    this.#connection.abort(new HostError("cancelled", `cancelled: ${reason}`));
  }

  #error(id: RequestId | null, error: HostError): Promise<void> {
    return this.#writer.send({ id, ok: false, error: error.toWire() });
  }

  #onFrame(body: Buffer): void {
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      void this.#error(null, new HostError("invalid_utf8", "the message is not valid UTF-8"));
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (err) {
      void this.#error(null, new HostError("invalid_json", `the message is not JSON (${(err as Error).message})`));
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      void this.#error(
        null,
        new HostError(
          "invalid_request",
          `a message must be a JSON object {id, action, ...}, not ${Array.isArray(message) ? "an array" : message === null ? "null" : typeof message}`,
        ),
      );
      return;
    }
    const { id, action, ...params } = message as Record<string, unknown>;
    if (id === undefined) {
      void this.#error(null, new HostError("missing_id", "the message has no id (a string or an integer, echoed in the reply)", { param: "id" }));
      return;
    }
    if (!validId(id)) {
      void this.#error(null, new HostError("invalid_id", "id must be a string of 1 to 256 characters or a safe integer", { param: "id" }));
      return;
    }
    if (typeof action !== "string") {
      void this.#error(id, new HostError("missing_action", "the message has no action (a string)", { param: "action" }));
      return;
    }
    const handler = Object.hasOwn(this.#actions, action) ? this.#actions[action] : undefined;
    if (!handler) {
      void this.#error(
        id,
        new HostError("unknown_action", `unknown action '${action.slice(0, 64)}'; actions: ${Object.keys(this.#actions).join(", ")}`, { param: "action" }),
      );
      return;
    }
    if (this.#inflight.has(id)) {
      void this.#error(id, new HostError("duplicate_id", `a request with id ${JSON.stringify(id)} is still running`, { param: "id" }));
      return;
    }
    if (this.#connection.signal.aborted) return;
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.#connection.signal]);
    const ctx: ActionContext = {
      params,
      daemon: () => this.#options.daemon(signal),
      signal,
      emit: (event, fields) => (signal.aborted ? Promise.resolve() : this.#writer.send({ ...fields, id, event })),
      cancel: (target) => this.#cancel(target),
      hub: this.#options.hub ?? { url: undefined, token: undefined },
      version: this.#options.version,
    };
    const done = this.#execute(id, action, handler, ctx).finally(() => this.#inflight.delete(id));
    this.#inflight.set(id, { controller, done });
  }

  async #execute(id: RequestId, action: string, handler: ActionHandler, ctx: ActionContext): Promise<void> {
    let reply: HostMessage;
    try {
      const result = await handler(ctx);
      // A request cancelled while its last step completed still answers as cancelled: no events came after the cancel.
      if (ctx.signal.aborted) throw ctx.signal.reason;
      reply = { id, ok: true, result: result ?? null };
    } catch (err) {
      let error: HostError;
      if (ctx.signal.aborted) error = ctx.signal.reason instanceof HostError ? ctx.signal.reason : new HostError("cancelled", "cancelled");
      else if (err instanceof HostError) {
        error = err;
        if (err.code === "daemon_unavailable") this.#options.onDaemonUnavailable?.();
      } else {
        this.#options.logger.error({ err, action }, "action failed");
        error = new HostError("internal_error", "the host failed to run this action (see its log)");
      }
      reply = { id, ok: false, error: error.toWire() };
    }
    await this.#writer.send(reply);
  }

  #cancel(target: RequestId): boolean {
    const request = this.#inflight.get(target);
    if (!request) return false;
    request.controller.abort(new HostError("cancelled", "cancelled by a cancel request"));
    return true;
  }
}
