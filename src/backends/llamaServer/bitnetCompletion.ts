import { request as httpRequest, type IncomingMessage } from "node:http";
import { z } from "zod";
import { UpstreamError } from "../../core/errors.js";
import type { CompletionRequest, FinishReason, GenerationChunk } from "../../core/types.js";
import type { ChildEndpoint } from "../childServer/ChildEndpoint.js";
import { parseSse } from "../openaiHttp/parseSse.js";

/**
 * Text completions on BitNet's llama-server. Its fork (llama.cpp of autumn 2024) answers `/v1/completions` in
 * llama.cpp's own format, not OpenAI's (that came to llama-server later), so the daemon speaks that format on the
 * native `/completion` endpoint: `{content, stop}` events, the last one with the token counts and why it stopped.
 * Chat needs nothing of this: the fork's `/v1/chat/completions` is OpenAI's.
 */

const MAX_ERROR_BODY = 64 * 1024;

const eventSchema = z
  .object({
    content: z.string().optional(),
    stop: z.boolean().optional(),
    tokens_predicted: z.number().int().nonnegative().optional(),
    tokens_evaluated: z.number().int().nonnegative().optional(),
    stopped_eos: z.boolean().optional(),
    stopped_word: z.boolean().optional(),
    stopped_limit: z.boolean().optional(),
    /** Newer llama-servers say why in one field instead. */
    stop_type: z.string().optional(),
    error: z.unknown().optional(),
  })
  .loose();

/** The request body for `/completion`: every sampler explicit, as LlamaServerBackend already made them. */
export function bitnetCompletionBody(request: CompletionRequest): Record<string, unknown> {
  const s = request.sampling;
  return {
    prompt: request.prompt,
    // -1: until the context is full (the fork's n_predict has no "unset" otherwise).
    n_predict: s.maxTokens ?? -1,
    temperature: s.temperature,
    top_p: s.topP ?? 1,
    top_k: s.topK ?? 0,
    min_p: s.minP ?? 0,
    repeat_penalty: s.repeatPenalty ?? 1,
    presence_penalty: s.presencePenalty,
    frequency_penalty: s.frequencyPenalty,
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    ...(s.stop.length > 0 ? { stop: s.stop } : {}),
    stream: true,
  };
}

/** One streamed completion from the child at `endpoint`, as the daemon's chunks. */
export async function* bitnetComplete(endpoint: ChildEndpoint, request: CompletionRequest, name: string, signal: AbortSignal): AsyncGenerator<GenerationChunk> {
  const res = await post(endpoint, "/completion", bitnetCompletionBody(request), name, signal);
  let finished = false;
  let pieces = 0;
  try {
    for await (const payload of parseSse(res as AsyncIterable<Uint8Array>)) {
      let json: unknown;
      try {
        json = JSON.parse(payload);
      } catch {
        throw new UpstreamError(`Upstream '${name}' sent an event that is not JSON: ${payload.slice(0, 200)}`);
      }
      const event = eventSchema.safeParse(json);
      if (!event.success) throw new UpstreamError(`Upstream '${name}' sent an unexpected event: ${payload.slice(0, 200)}`);
      const e = event.data;
      if (finished) continue; // the response ends right after its last event; read to the end to keep the connection
      if (e.error !== undefined) throw new UpstreamError(`Upstream '${name}' failed mid-stream: ${describeError(e.error)}`);
      if (e.content) {
        pieces++;
        yield { type: "text", index: 0, text: e.content };
      }
      if (e.stop) {
        finished = true;
        const limit = e.stop_type !== undefined ? e.stop_type === "limit" : e.stopped_limit === true && !e.stopped_eos && !e.stopped_word;
        const reason: FinishReason = limit ? "length" : "stop";
        yield { type: "finish", index: 0, reason };
        yield { type: "usage", usage: { promptTokens: e.tokens_evaluated ?? 0, completionTokens: e.tokens_predicted ?? pieces } };
      }
    }
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(`Upstream '${name}' broke off the stream: ${describeNetworkError(err)}`, { cause: err });
  } finally {
    if (!res.complete) res.destroy();
  }
  if (signal.aborted) throw signal.reason;
  if (!finished) throw new UpstreamError(`Upstream '${name}' ended the stream before it was complete.`);
}

/** POST with the child's key on its agent; resolves once 2xx headers arrive. */
async function post(endpoint: ChildEndpoint, path: string, body: unknown, name: string, signal: AbortSignal): Promise<IncomingMessage> {
  const text = JSON.stringify(body);
  const where = endpoint.socketPath !== null ? { socketPath: endpoint.socketPath } : { host: "127.0.0.1", port: endpoint.port! };
  const attempt = () =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        {
          ...where,
          path,
          method: "POST",
          agent: endpoint.agent,
          signal,
          headers: {
            host: endpoint.hostHeader,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(text),
            accept: "text/event-stream",
            authorization: `Bearer ${endpoint.key}`,
          },
        },
        resolve,
      );
      req.once("error", (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.end(text);
    });
  let res: IncomingMessage;
  try {
    try {
      res = await attempt();
    } catch (err) {
      // A kept-alive connection the server closed while idle (cpp-httplib does, after a few seconds) fails at once,
      // before the request reached it: one retry on a fresh connection is safe.
      if (!(err as { reusedSocket?: boolean }).reusedSocket || signal.aborted) throw err;
      res = await attempt();
    }
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    // Nothing reached the engine: ChildServerClient retries this once on a restarted child.
    throw new UpstreamError(`Upstream '${name}' is unreachable: ${describeNetworkError(err)}.`, { code: "upstream_unreachable", cause: err });
  }
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  let raw = "";
  for await (const c of res as AsyncIterable<Buffer>) {
    raw += c.toString("utf8");
    if (raw.length >= MAX_ERROR_BODY) break;
  }
  res.destroy();
  let message = raw.trim().slice(0, 2000) || (res.statusMessage ?? "");
  try {
    message = describeError((JSON.parse(raw) as { error?: unknown }).error ?? message);
  } catch {
    /* not JSON: keep the text */
  }
  const clientError = status >= 400 && status < 500 && status !== 401 && status !== 403;
  throw new UpstreamError(`Upstream '${name}' answered ${status}: ${message}`, { status: clientError ? status : 502 });
}

function describeError(e: unknown): string {
  if (typeof e === "string") return e;
  if (e && typeof e === "object" && typeof (e as { message?: unknown }).message === "string") return (e as { message: string }).message;
  return JSON.stringify(e);
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ?? e?.message ?? String(err);
}
