import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface RawExchange {
  /** Everything the server wrote before it closed the connection (or before `timeoutMs`). */
  text: string;
  /** The first response in `text`, or null when the server wrote nothing. */
  response: RawResponse | null;
  /** True when the server closed the connection; false when the exchange hit `timeoutMs` first. */
  closed: boolean;
}

/** Parses the first HTTP/1.x response of a raw byte stream (Content-Length or chunked body). */
export function parseRawResponse(text: string): RawResponse | null {
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) return null;
  const [statusLine, ...lines] = text.slice(0, headEnd).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let rest = text.slice(headEnd + 4);
  let body = "";
  if (headers["content-length"] !== undefined) body = rest.slice(0, Number(headers["content-length"]));
  else if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    for (;;) {
      const eol = rest.indexOf("\r\n");
      if (eol < 0) break;
      const size = Number.parseInt(rest.slice(0, eol), 16);
      if (!(size > 0)) break;
      body += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
  } else body = rest;
  return { status, headers, body };
}

export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Writes raw bytes on a fresh connection and reads until the server closes it (or `timeoutMs`). */
export async function rawExchange(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<RawExchange> {
  const socket = await openSocket(port);
  return readUntilClose(socket, timeoutMs, () => socket.write(data));
}

/** Reads a socket until the server closes it (or `timeoutMs`, then destroys it). `start` runs once listening. */
export function readUntilClose(socket: Socket, timeoutMs: number, start?: () => void): Promise<RawExchange> {
  return new Promise((resolve) => {
    let text = "";
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, response: parseRawResponse(text), closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => (text += d));
    socket.once("end", () => finish(true));
    socket.once("close", () => finish(true));
    socket.on("error", () => undefined); // a reset after the answer still counts as closed
    start?.();
  });
}
