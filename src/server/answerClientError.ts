import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { toErrorEnvelope } from "../api/openai/errorEnvelope.js";
import { HttpProtocolError } from "./HttpProtocolError.js";

/** How long a refused connection may keep sending before it is cut: enough for the client to read the answer. */
const LINGER_MS = 2_000;

/** Sockets already answered: Node's parser reports every later chunk of a broken request again. */
const answered = new WeakSet<Duplex>();

/** Node's parser and timeout errors (llhttp `HPE_*` codes, `ERR_HTTP_REQUEST_TIMEOUT`) as the error we answer with. */
function protocolErrorFor(err: NodeJS.ErrnoException): HttpProtocolError {
  switch (err.code) {
    case "HPE_HEADER_OVERFLOW":
      return new HttpProtocolError(431, "The request's headers are larger than the server accepts.", "headers_too_large");
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new HttpProtocolError(408, "The request did not arrive in time (headers and body must arrive within the request timeout).", "request_timeout");
    case "HPE_UNEXPECTED_CONTENT_LENGTH":
    case "HPE_INVALID_TRANSFER_ENCODING":
    case "HPE_INVALID_CONTENT_LENGTH":
    case "HPE_INVALID_CHUNK_SIZE":
      return new HttpProtocolError(400, `The request's framing is invalid: ${parserReason(err)}.`, "invalid_framing");
    default:
      return new HttpProtocolError(400, `The request is not valid HTTP: ${parserReason(err)}.`, "malformed_request");
  }
}

/** llhttp's own words ("Parse Error: Duplicate Content-Length" → "Duplicate Content-Length"); never the raw bytes. */
function parserReason(err: NodeJS.ErrnoException): string {
  const reason = (err as { reason?: unknown }).reason;
  const text = typeof reason === "string" && reason !== "" ? reason : err.message.replace(/^Parse Error:\s*/, "");
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * The server's `clientError` handler (Fastify's `clientErrorHandler`): a request Node's parser refuses never reaches
 * Fastify, so its answer is written here, on the socket, in the same OpenAI envelope as every other error. The
 * socket is ended rather than destroyed, so a client still sending (oversized headers) reads the answer instead of a
 * reset; it is destroyed after a short linger.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  if (answered.has(socket)) return;
  if (err.code === "ECONNRESET" || err.code === "EPIPE" || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  // A response already under way on this connection (keep-alive, pipelining) cannot be followed by another head.
  const inProgress = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  answered.add(socket);
  const error = protocolErrorFor(err);
  const { status, body } = toErrorEnvelope(error);
  log.info({ status, code: body.error.code, reason: error.message }, "request refused by the HTTP parser");
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
  );
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  linger.unref();
  socket.once("close", () => clearTimeout(linger));
}
