import type { RerankRequest, RerankResult } from "../../core/rerank.js";
import { randomUUID } from "node:crypto";
import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { z } from "zod";
import { UpstreamError } from "../../core/errors.js";
import type {
  ChatMessage,
  ChatRequest,
  CompletionRequest,
  EmbedRequest,
  EmbedResult,
  FinishReason,
  GenerationChunk,
  GenerationOptions,
  LogprobEntry,
  TokenLogprob,
} from "../../core/types.js";
import { parseSse } from "./parseSse.js";

export interface UpstreamTarget {
  /** For messages and logs: `lmstudio`, `llama-server:qwen`, ... */
  name: string;
  /** Up to and including `/v1`, e.g. `http://127.0.0.1:1234/v1`. */
  baseUrl: string;
  apiKey?: string;
  /**
   * A Unix socket to connect to instead of the URL's host and port (a supervised child); the URL still gives the
   * path and the Host header. Every request then goes through node:http.
   */
  socketPath?: string;
  /**
   * The keep-alive agent for this server, owned (and destroyed) by the caller: a supervised child's agent lives as
   * long as that child. Default: one agent per origin, kept for the daemon's life (upstream servers, a fixed set).
   */
  agent?: Agent;
  /** Send the client's unknown request fields on (configured upstreams: their own extensions); not to our children. */
  forwardUnknownFields?: boolean;
  /** Until response headers arrive. */
  connectTimeoutMs: number;
  /** Until the first body bytes arrive (a model loading upstream can take a while). */
  firstByteTimeoutMs: number;
  fetch?: typeof fetch;
}

const MAX_ERROR_BODY = 64 * 1024;
/** Why a response still open a second after its [DONE] was cut off (not an error). */
const DRAINED = new Error("stream drained after [DONE]");

const finishSchema = z.enum(["stop", "length", "tool_calls", "content_filter", "function_call"]).nullable().optional();
const usageSchema = z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative() }).loose();
/** Streamed tool calls: the first delta of a call has its id and name, later ones argument fragments. */
const toolCallDeltasSchema = z
  .array(
    z
      .object({
        index: z.number().int().nonnegative().optional(),
        id: z.string().nullable().optional(),
        function: z.object({ name: z.string().nullable().optional(), arguments: z.string().nullable().optional() }).loose().optional(),
      })
      .loose(),
  )
  .nullable()
  .optional();
/** A token's logprob as OpenAI's chat API (and llama-server on both endpoints) streams it. */
const tokenLogprobSchema = z.object({ token: z.string(), logprob: z.number().nullable(), bytes: z.array(z.number().int()).nullable().optional() }).loose();
const chatLogprobsSchema = z
  .object({ content: z.array(tokenLogprobSchema.extend({ top_logprobs: z.array(tokenLogprobSchema).nullable().optional() })).nullable() })
  .loose();
/** The legacy completions form: parallel arrays, alternatives as {token: logprob}. */
const legacyLogprobsSchema = z
  .object({
    tokens: z.array(z.string()),
    token_logprobs: z.array(z.number().nullable()),
    top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullable().optional(),
  })
  .loose();
type ChatLogprobs = z.infer<typeof chatLogprobsSchema>;
type LegacyLogprobs = z.infer<typeof legacyLogprobsSchema>;
const logprobsSchema = z.union([chatLogprobsSchema, legacyLogprobsSchema]).nullable().optional();
/** vLLM's `return_token_ids` fields (the transformers sidecar speaks them too). */
const tokenIdsSchema = z.array(z.number().int().nonnegative()).nullable().optional();
const streamChunkSchema = z
  .object({
    choices: z
      .array(
        z
          .object({
            index: z.number().int().nonnegative().optional(),
            delta: z.object({ content: z.string().nullable().optional(), tool_calls: toolCallDeltasSchema }).loose().optional(),
            text: z.string().nullable().optional(),
            finish_reason: finishSchema,
            logprobs: logprobsSchema,
            token_ids: tokenIdsSchema,
            prompt_token_ids: tokenIdsSchema,
          })
          .loose(),
      )
      .optional(),
    usage: usageSchema.nullable().optional(),
    prompt_token_ids: tokenIdsSchema,
    error: z.unknown().optional(),
  })
  .loose();
const embeddingsSchema = z
  .object({
    data: z.array(z.object({ index: z.number().int().nonnegative(), embedding: z.array(z.number()) }).loose()),
    usage: z.object({ prompt_tokens: z.number().int().nonnegative() }).loose().optional(),
  })
  .loose();
const rerankSchema = z
  .object({
    results: z.array(z.object({ index: z.number().int().nonnegative(), relevance_score: z.number() }).loose()),
    usage: z.object({ prompt_tokens: z.number().int().nonnegative() }).loose().optional(),
  })
  .loose();
const modelsSchema = z.object({ data: z.array(z.object({ id: z.string() }).loose()) }).loose();
const errorSchema = z
  .object({
    error: z.union([
      z.string(),
      z.object({ message: z.string().optional(), type: z.string().optional(), code: z.unknown().optional(), param: z.unknown().optional() }).loose(),
    ]),
  })
  .loose();

function samplingBody(o: GenerationOptions): Record<string, unknown> {
  const s = o.sampling;
  return {
    ...(s.maxTokens !== undefined ? { max_tokens: s.maxTokens } : {}),
    temperature: s.temperature,
    ...(s.topP !== undefined ? { top_p: s.topP } : {}),
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    ...(s.stop.length > 0 ? { stop: s.stop } : {}),
    ...(s.presencePenalty !== 0 ? { presence_penalty: s.presencePenalty } : {}),
    ...(s.frequencyPenalty !== 0 ? { frequency_penalty: s.frequencyPenalty } : {}),
    ...(o.returnTokenIds ? { return_token_ids: true } : {}),
    ...(o.n > 1 ? { n: o.n } : {}),
    // llama.cpp / vLLM samplers, sent when set; the server judges them. The repeat penalty in both spellings:
    // llama.cpp reads `repeat_penalty`, vLLM `repetition_penalty`, and each ignores the other's.
    ...(s.topK !== undefined ? { top_k: s.topK } : {}),
    ...(s.minP !== undefined ? { min_p: s.minP } : {}),
    ...(s.repeatPenalty !== undefined ? { repeat_penalty: s.repeatPenalty, repetition_penalty: s.repeatPenalty } : {}),
  };
}

function messageToWire(m: ChatMessage): Record<string, unknown> {
  if (m.role === "tool") return { role: "tool", content: m.content, tool_call_id: m.toolCallId };
  if (m.role === "assistant" && m.toolCalls?.length) {
    return {
      role: "assistant",
      content: m.content === "" ? null : m.content,
      tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })),
    };
  }
  return { role: m.role, content: m.content };
}

/** Tools, the tool choice and the response format as the OpenAI API spells them; defaults are left out. */
function toolsBody(r: ChatRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.tools.length > 0) {
    out["tools"] = r.tools.map((t) => ({
      type: "function",
      function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters, ...(t.strict ? { strict: true } : {}) },
    }));
    const c = r.toolChoice;
    out["tool_choice"] = c.type === "function" ? { type: "function", function: { name: c.name } } : c.type;
    if (!r.parallelToolCalls) out["parallel_tool_calls"] = false;
  }
  const f = r.responseFormat;
  if (f.type === "json_object") out["response_format"] = { type: "json_object" };
  if (f.type === "json_schema") out["response_format"] = { type: "json_schema", json_schema: { name: f.name, schema: f.schema, strict: f.strict } };
  return out;
}

/**
 * Logprobs as the server is asked for them: at least one alternative, since llama-server reports nothing at all for
 * 0 (`top_logprobs: 0`, `n_probs: 0`); the answer's are cut back to what was asked. llama-server's values are then
 * those before its samplers (`post_sampling_probs` false, its default), the daemon's definition.
 */
function logprobsBody(o: GenerationOptions, shape: "delta" | "text"): Record<string, unknown> {
  if (o.logprobs === null) return {};
  const top = Math.max(o.logprobs, 1);
  return shape === "delta" ? { logprobs: true, top_logprobs: top } : { logprobs: top };
}

const utf8 = (text: string) => [...Buffer.from(text, "utf8")];
const LOGPROB_FLOOR = -9999;

function toTokenLogprob(t: { token: string; logprob: number | null; bytes?: number[] | null | undefined }): TokenLogprob {
  return { token: t.token, logprob: t.logprob ?? LOGPROB_FLOOR, bytes: t.bytes ?? utf8(t.token) };
}

/** An upstream event's logprobs in the daemon's form, `top` alternatives each. */
function toLogprobEntries(lp: ChatLogprobs | LegacyLogprobs, top: number): LogprobEntry[] {
  if (!Array.isArray((lp as LegacyLogprobs).tokens)) {
    return ((lp as ChatLogprobs).content ?? []).map((e) => ({ ...toTokenLogprob(e), top: (e.top_logprobs ?? []).slice(0, top).map(toTokenLogprob) }));
  }
  const legacy = lp as LegacyLogprobs;
  return legacy.tokens.map((token, i) => {
    const alternatives = Object.entries(legacy.top_logprobs?.[i] ?? {}).sort((a, b) => b[1] - a[1]);
    return {
      token,
      logprob: legacy.token_logprobs[i] ?? LOGPROB_FLOOR,
      bytes: utf8(token),
      top: alternatives.slice(0, top).map(([t, logprob]) => ({ token: t, logprob, bytes: utf8(t) })),
    };
  });
}

function toFinish(reason: string | null | undefined): FinishReason | null {
  if (reason == null) return null;
  if (reason === "function_call") return "tool_calls";
  return reason as FinishReason;
}

/**
 * A client for one OpenAI-compatible server. Generation always streams from upstream, chunk by chunk, into the
 * daemon's own chunk types; the daemon writes them back out (as SSE or one JSON object) with its own ids and the
 * client's model name. Every request takes the caller's signal, so a client that goes away aborts upstream at once.
 */
export class OpenAIUpstream {
  constructor(readonly target: UpstreamTarget) {}

  private url(path: string): string {
    return `${this.target.baseUrl.replace(/\/+$/, "")}${path}`;
  }

  /** Why a request got no response: the caller's abort, the connect timeout, or a network error. */
  private unreachable(err: unknown, signal: AbortSignal, timeout: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    const why = timeout.aborted ? `no answer within ${this.target.connectTimeoutMs} ms` : describeNetworkError(err);
    return new UpstreamError(`Upstream '${this.target.name}' is unreachable: ${why}.`, { code: "upstream_unreachable", cause: err });
  }

  private async post(path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    return this.request(path, { method: "POST", body: JSON.stringify(body) }, signal);
  }

  /** node:http (with its keep-alive agent) rather than fetch: always for a socket or an owned agent. */
  private get viaNodeHttp(): boolean {
    return this.target.socketPath !== undefined || this.target.agent !== undefined;
  }

  private async request(path: string, init: RequestInit & { body?: string }, signal: AbortSignal): Promise<Response> {
    if (this.viaNodeHttp) {
      const res = await this.send(init.method ?? "GET", path, init.body, signal);
      return new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>, { status: res.statusCode ?? 200, statusText: res.statusMessage ?? "" });
    }
    const { apiKey, connectTimeoutMs } = this.target;
    const doFetch = this.target.fetch ?? fetch;
    // Until the headers only: fetch's signal also governs the body, so a timeout signal left in place would cut
    // every stream that lasts longer than connectTimeoutMs.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException("connect timeout", "TimeoutError")), connectTimeoutMs);
    let res: Response;
    try {
      res = await doFetch(this.url(path), {
        ...init,
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
        signal: AbortSignal.any([signal, timeout.signal]),
      });
    } catch (err) {
      throw this.unreachable(err, signal, timeout.signal);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) throw await this.errorFrom(res);
    return res;
  }

  private async errorFrom(res: Response): Promise<UpstreamError> {
    const text = await readBounded(res, MAX_ERROR_BODY).catch(() => "");
    let message = text.trim().slice(0, 2000) || res.statusText;
    let type: string | undefined;
    let code: string | undefined;
    let param: string | undefined;
    try {
      const parsed = errorSchema.parse(JSON.parse(text));
      if (typeof parsed.error === "string") message = parsed.error;
      else {
        message = parsed.error.message ?? message;
        type = parsed.error.type;
        code = typeof parsed.error.code === "string" ? parsed.error.code : undefined;
        param = typeof parsed.error.param === "string" ? parsed.error.param : undefined;
      }
    } catch {
      /* not an envelope: keep the text */
    }
    const clientError = res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 403;
    return new UpstreamError(`Upstream '${this.target.name}' answered ${res.status}: ${message}`, {
      status: clientError ? res.status : 502,
      type: clientError && (type === "invalid_request_error" || type === "not_found_error") ? type : undefined,
      code: code ?? "upstream_error",
      param: param ?? null,
    });
  }

  chat(request: ChatRequest, model: string, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.stream(
      "/chat/completions",
      {
        ...this.extra(request),
        model,
        messages: request.messages.map(messageToWire),
        ...toolsBody(request),
        ...samplingBody(request),
        ...logprobsBody(request, "delta"),
      },
      "delta",
      signal,
      request.logprobs,
    );
  }

  complete(request: CompletionRequest, model: string, signal: AbortSignal): AsyncIterable<GenerationChunk> {
    return this.stream(
      "/completions",
      { ...this.extra(request), model, prompt: request.prompt, ...samplingBody(request), ...logprobsBody(request, "text") },
      "text",
      signal,
      request.logprobs,
    );
  }

  /** The client's unknown fields, first in the body so every field this server sets wins. */
  private extra(request: GenerationOptions): Record<string, unknown> {
    return this.target.forwardUnknownFields && request.extraFields ? request.extraFields : {};
  }

  private async *stream(
    path: string,
    body: Record<string, unknown>,
    shape: "delta" | "text",
    signal: AbortSignal,
    logprobs: number | null = null,
  ): AsyncGenerator<GenerationChunk> {
    const { firstByteTimeoutMs, name } = this.target;
    // A stalled upstream (loading a model forever, wedged) fails instead of holding the slot.
    const stall = new AbortController();
    const firstByte = setTimeout(
      () => stall.abort(new UpstreamError(`Upstream '${name}' sent nothing within ${firstByteTimeoutMs} ms.`, { code: "upstream_timeout", status: 504 })),
      firstByteTimeoutMs,
    );
    let reader: AsyncIterator<Uint8Array>;
    const payload = { ...body, stream: true, stream_options: { include_usage: true } };
    try {
      if (this.viaNodeHttp || (!this.target.fetch && this.target.baseUrl.startsWith("http:"))) {
        // node:http, not fetch: no WHATWG streams between the socket and the SSE parser (every token goes through).
        reader = (await this.send("POST", path, JSON.stringify(payload), AbortSignal.any([signal, stall.signal])))[Symbol.asyncIterator]();
      } else {
        const res = await this.post(path, payload, AbortSignal.any([signal, stall.signal]));
        if (!res.body) throw new UpstreamError(`Upstream '${this.target.name}' sent no body.`);
        reader = res.body[Symbol.asyncIterator]();
      }
    } catch (err) {
      clearTimeout(firstByte);
      throw stall.signal.aborted && !signal.aborted ? stall.signal.reason : err;
    }
    let finished = false;
    let sawDone = false;
    let drain: NodeJS.Timeout | undefined;
    let usage: GenerationChunk | null = null;
    let textChunks = 0;
    const startedCalls = new Set<string>();
    try {
      for await (const payload of parseSse({ [Symbol.asyncIterator]: () => reader })) {
        clearTimeout(firstByte);
        if (sawDone) continue;
        if (payload.trim() === "[DONE]") {
          // Read on to the end of the response (it ends right after [DONE]) instead of destroying it: a response
          // read to its end leaves its keep-alive connection for the next request, which then skips a TCP connect
          // and, for a Python sidecar, a new server thread. A server that keeps the stream open is cut off.
          sawDone = true;
          drain = setTimeout(() => stall.abort(DRAINED), 1_000);
          continue;
        }
        let json: unknown;
        try {
          json = JSON.parse(payload);
        } catch {
          throw new UpstreamError(`Upstream '${name}' sent an event that is not JSON: ${payload.slice(0, 200)}`);
        }
        const chunk = streamChunkSchema.safeParse(json);
        if (!chunk.success) throw new UpstreamError(`Upstream '${name}' sent an unexpected event: ${payload.slice(0, 200)}`);
        if (chunk.data.error !== undefined) {
          const e = chunk.data.error as { message?: unknown } | string;
          throw new UpstreamError(`Upstream '${name}' failed mid-stream: ${typeof e === "string" ? e : typeof e.message === "string" ? e.message : JSON.stringify(e)}`);
        }
        if (chunk.data.prompt_token_ids) yield { type: "token_ids", index: 0, ids: chunk.data.prompt_token_ids, prompt: true };
        for (const choice of chunk.data.choices ?? []) {
          const index = choice.index ?? 0;
          if (choice.prompt_token_ids) yield { type: "token_ids", index, ids: choice.prompt_token_ids, prompt: true };
          if (choice.token_ids?.length) yield { type: "token_ids", index, ids: choice.token_ids };
          if (logprobs !== null && choice.logprobs) {
            const entries = toLogprobEntries(choice.logprobs, logprobs);
            if (entries.length > 0) yield { type: "logprobs", index, entries };
          }
          const text = shape === "delta" ? choice.delta?.content : choice.text;
          if (text) {
            textChunks++;
            yield { type: "text", index, text };
          }
          for (const [position, call] of (choice.delta?.tool_calls ?? []).entries()) {
            const callIndex = call.index ?? position;
            const key = `${index}:${callIndex}`;
            const args = call.function?.arguments ?? "";
            if (startedCalls.has(key)) {
              if (args) yield { type: "tool_call_arguments", index, callIndex, arguments: args };
              continue;
            }
            const fn = call.function?.name;
            if (!fn) throw new UpstreamError(`Upstream '${name}' streamed arguments of tool call ${callIndex} before its function name.`);
            startedCalls.add(key);
            textChunks++;
            yield { type: "tool_call", index, callIndex, id: call.id || `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: fn, arguments: args };
          }
          const reason = toFinish(choice.finish_reason);
          if (reason) {
            finished = true;
            yield { type: "finish", index, reason };
          }
        }
        if (chunk.data.usage) {
          usage = { type: "usage", usage: { promptTokens: chunk.data.usage.prompt_tokens, completionTokens: chunk.data.usage.completion_tokens } };
        }
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (!sawDone) {
        if (stall.signal.aborted) throw stall.signal.reason;
        if (err instanceof UpstreamError) throw err;
        throw new UpstreamError(`Upstream '${name}' broke off the stream: ${describeNetworkError(err)}`, { cause: err });
      }
      // after [DONE] nothing more was needed: a connection closed or cut off there is not an error
    } finally {
      clearTimeout(drain);
      clearTimeout(firstByte);
      await reader.return?.();
    }
    if (signal.aborted) throw signal.reason;
    if (!finished) {
      throw new UpstreamError(`Upstream '${name}' ended the stream ${sawDone ? "without a finish reason" : "before it was complete"}.`);
    }
    // Servers that ignore include_usage: counted pieces are the best estimate of generated tokens.
    yield usage ?? { type: "usage", usage: { promptTokens: 0, completionTokens: textChunks } };
  }

  /** A request with node:http and a keep-alive agent; resolves with the response once its headers arrive (2xx only). */
  private async send(method: string, path: string, text: string | undefined, signal: AbortSignal): Promise<IncomingMessage> {
    const { apiKey, connectTimeoutMs, socketPath } = this.target;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException("connect timeout", "TimeoutError")), connectTimeoutMs);
    let res: IncomingMessage;
    const attempt = () =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest(
          this.url(path),
          {
            method,
            agent: this.target.agent ?? agentFor(this.target.baseUrl),
            ...(socketPath !== undefined ? { socketPath } : {}),
            headers: {
              ...(text !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(text) } : {}),
              accept: "application/json, text/event-stream",
              ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
            },
          },
          resolve,
        );
        const onAbort = () => req.destroy((signal.aborted ? signal.reason : timeout.signal.reason) as Error);
        const both = AbortSignal.any([signal, timeout.signal]);
        if (both.aborted) onAbort();
        both.addEventListener("abort", onAbort, { once: true });
        req.once("close", () => both.removeEventListener("abort", onAbort));
        // After the headers only the caller's signal applies (a stream may last longer than the connect timeout).
        req.once("response", (r: IncomingMessage) => {
          both.removeEventListener("abort", onAbort);
          const onCallerAbort = () => r.destroy(signal.reason as Error);
          signal.addEventListener("abort", onCallerAbort, { once: true });
          r.once("close", () => signal.removeEventListener("abort", onCallerAbort));
        });
        req.once("error", (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
        req.end(text);
      });
    try {
      try {
        res = await attempt();
      } catch (err) {
        // A kept-alive connection that the server closed while idle fails at once, before the request reached it
        // (the race Node documents for reusedSocket): one retry on a fresh connection is safe.
        if (!(err as { reusedSocket?: boolean }).reusedSocket || signal.aborted || timeout.signal.aborted) throw err;
        res = await attempt();
      }
    } catch (err) {
      throw this.unreachable(err, signal, timeout.signal);
    } finally {
      clearTimeout(timer);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res as AsyncIterable<Buffer>) {
        chunks.push(c);
        size += c.length;
        if (size >= MAX_ERROR_BODY) break;
      }
      throw await this.errorFrom(new Response(Buffer.concat(chunks).toString("utf8"), { status, statusText: res.statusMessage ?? "" }));
    }
    return res;
  }

  async embed(request: EmbedRequest, model: string, signal: AbortSignal): Promise<EmbedResult> {
    // Token ids pass through as the client sent them (one flat array stays flat); the server checks their range.
    const input = request.flatTokenInput ? request.input[0] : request.input;
    const res = await this.post("/embeddings", { model, input, encoding_format: "float" }, signal);
    const parsed = embeddingsSchema.safeParse(await res.json().catch(() => null));
    if (!parsed.success || parsed.data.data.length !== request.input.length) {
      throw new UpstreamError(`Upstream '${this.target.name}' sent a malformed embeddings answer.`);
    }
    const vectors = [...parsed.data.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    return { vectors, promptTokens: parsed.data.usage?.prompt_tokens ?? 0 };
  }

  /** `/rerank` under the base URL (llama-server, vLLM, the sidecar): the scores as the server sent them, by index. */
  async rerank(request: RerankRequest, model: string, signal: AbortSignal): Promise<RerankResult> {
    const { query, documents, extraFields } = request;
    const res = await this.post("/rerank", { ...extraFields, model, query, documents, return_documents: false }, signal);
    const parsed = rerankSchema.safeParse(await res.json().catch(() => null));
    const scores = new Array<number>(documents.length).fill(Number.NaN);
    for (const r of parsed.success ? parsed.data.results : []) if (r.index < documents.length) scores[r.index] = r.relevance_score;
    if (!parsed.success || scores.some(Number.isNaN)) {
      throw new UpstreamError(`Upstream '${this.target.name}' sent a malformed rerank answer (it must score every document).`);
    }
    return { scores, promptTokens: parsed.data.usage?.prompt_tokens ?? 0 };
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const res = await this.request("/models", { method: "GET" }, signal);
    const parsed = modelsSchema.safeParse(await res.json().catch(() => null));
    if (!parsed.success) throw new UpstreamError(`Upstream '${this.target.name}' sent a malformed model list.`);
    return parsed.data.data.map((m) => m.id);
  }
}

const agents = new Map<string, Agent>();
/** One keep-alive agent per upstream origin: connections are reused across requests and OpenAIUpstream instances. */
function agentFor(baseUrl: string): Agent {
  const origin = new URL(baseUrl).origin;
  let agent = agents.get(origin);
  if (!agent) agents.set(origin, (agent = new Agent({ keepAlive: true })));
  return agent;
}

function describeNetworkError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const decoder = new TextDecoder();
  let out = "";
  for await (const chunk of res.body) {
    out += decoder.decode(chunk as Uint8Array, { stream: true });
    if (out.length >= max) break;
  }
  return out.slice(0, max);
}
