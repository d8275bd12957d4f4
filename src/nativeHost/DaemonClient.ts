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

  /** A streamed (SSE) request: each event's parsed data, until `[DONE]` or the end of the body. */
  async *stream(method: string, path: string, body: unknown, signal: AbortSignal): AsyncGenerator<SseEvent> {
    const res = await this.#fetch(method, path, body, signal);
    if (!res.ok) throw errorFromResponse(res.status, await res.text());
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + (buffer[end] === "\r" ? 4 : 2));
          const parsed = parseSseBlock(block);
          if (parsed === "done") return;
          if (parsed) yield parsed;
        }
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new HostError("cancelled", "the request was cancelled");
      throw new HostError("daemon_unavailable", `the daemon's stream broke off (${(err as Error).message})`);
    }
  }
}

function parseSseBlock(block: string): SseEvent | "done" | null {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
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
