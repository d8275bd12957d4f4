import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { z } from "zod";
import { HostError } from "./HostError.js";

const envelopeSchema = z.object({
  error: z.object({ message: z.string(), type: z.string().optional(), code: z.string().nullable().optional(), param: z.string().nullable().optional() }),
});

/** How the host reaches the daemon: its base URL (no trailing slash, no /v1) and the API key to send, if any. */
export interface DaemonTarget {
  url: string;
  apiKey: string | undefined;
}

/** Parsed SSE events of one response: `data` is the JSON of a `data:` line; `event` its `event:` name, if any. */
export interface SseEvent {
  event: string | undefined;
  data: unknown;
}

/** The daemon's HTTP API, as the native host relays to it. Every call takes the request's AbortSignal. */
export class DaemonClient {
  readonly target: DaemonTarget;
  readonly #agent = new Agent({ keepAlive: true });

  constructor(target: DaemonTarget) {
    this.target = target;
  }

  #headers(json: boolean): Record<string, string> {
    return {
      ...(json ? { "content-type": "application/json" } : {}),
      ...(this.target.apiKey ? { authorization: `Bearer ${this.target.apiKey}` } : {}),
    };
  }

  async #fetch(method: string, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    try {
      return await fetch(`${this.target.url}${path}`, {
        method,
        headers: this.#headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new HostError("cancelled", "the request was cancelled");
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new HostError("daemon_unavailable", `the daemon at ${this.target.url} did not answer (${cause?.code ?? cause?.message ?? (err as Error).message})`);
    }
  }

  /** A JSON request; a non-2xx answer becomes a HostError with the daemon's code and message. */
  async json(method: string, path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const res = await this.#fetch(method, path, body, signal);
    const text = await res.text();
    if (!res.ok) throw errorFromResponse(res.status, text);
    if (text === "") return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HostError("bad_daemon_response", `${method} ${path} did not answer JSON`, { status: res.status });
    }
  }

  /** Opens a request with node:http (streams: far less work per chunk than fetch's web streams). */
  #open(method: string, path: string, body: unknown, signal: AbortSignal): Promise<IncomingMessage> {
    const url = new URL(`${this.target.url}${path}`);
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers: this.#headers(payload !== undefined), agent: url.protocol === "https:" ? undefined : this.#agent, signal });
      req.once("response", resolve);
      req.once("error", (err: Error & { code?: string }) => {
        if (signal.aborted) reject(signal.reason instanceof Error ? signal.reason : new HostError("cancelled", "the request was cancelled"));
        else reject(new HostError("daemon_unavailable", `the daemon at ${this.target.url} did not answer (${err.code ?? err.message})`));
      });
      req.end(payload);
    });
  }

  /** A streamed (SSE) request: each event's parsed data, until `[DONE]` or the end of the body. */
  async *stream(method: string, path: string, body: unknown, signal: AbortSignal): AsyncGenerator<SseEvent> {
    const res = await this.#open(method, path, body, signal);
    res.setEncoding("utf8");
    const status = res.statusCode ?? 0;
    try {
      if (status < 200 || status > 299) {
        let text = "";
        for await (const chunk of res) text += chunk as string;
        throw errorFromResponse(status, text);
      }
      let buffer = "";
      for await (const chunk of res) {
        buffer += chunk as string;
        let end: number;
        // The daemon ends events with a blank line (\n\n); other servers may use \r\n.
        if (buffer.includes("\r")) buffer = buffer.replace(/\r\n/g, "\n");
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const parsed = parseSseBlock(block);
          if (parsed === "done") return;
          if (parsed) yield parsed;
        }
      }
    } catch (err) {
      if (err instanceof HostError) throw err;
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new HostError("cancelled", "the request was cancelled");
      throw new HostError("daemon_unavailable", `the daemon's stream broke off (${(err as Error).message})`);
    } finally {
      // Leaving early (done, an error, the consumer stopping) closes the connection: the daemon stops generating.
      if (!res.complete) res.destroy();
    }
  }
}

function parseSseBlock(block: string): SseEvent | "done" | null {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
    else if (line.startsWith("event:")) event = line.slice(6).trim();
  }
  if (data.length === 0) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return "done";
  try {
    return { event, data: JSON.parse(text) as unknown };
  } catch {
    throw new HostError("bad_daemon_response", "the daemon's stream carried an event that is not JSON");
  }
}

/** The daemon's OpenAI error envelope, as a HostError keeping its code, message, status and param. */
export function errorFromResponse(status: number, text: string): HostError {
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  const parsed = envelopeSchema.safeParse(body);
  if (parsed.success) {
    const e = parsed.data.error;
    return new HostError(e.code ?? e.type ?? "daemon_error", e.message, { status, param: e.param ?? undefined });
  }
  return new HostError(status === 404 ? "not_found" : "daemon_error", `the daemon answered HTTP ${status}`, { status });
}
