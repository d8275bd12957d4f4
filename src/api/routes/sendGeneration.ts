import type { FastifyReply, FastifyRequest } from "fastify";
import type { FinishReason, GenerationChunk, LogprobEntry, Usage } from "../../core/types.js";
import { toErrorEnvelope } from "../openai/errorEnvelope.js";
import { textOffsets, type FoldedChoice, type ResponseFormatter, type TokenIdsExtra } from "../openai/responseFormatters.js";
import { SseWriter } from "../openai/SseWriter.js";
import { readAhead } from "../../backends/generation/readAhead.js";
import { setStreamFailure } from "../streamFailure.js";
import { GenerationTimer, type Timings } from "../GenerationTimings.js";

interface SendGenerationOptions {
  request: FastifyRequest;
  reply: FastifyReply;
  chunks: AsyncIterable<GenerationChunk>;
  formatter: ResponseFormatter;
  stream: boolean;
  includeUsage: boolean;
  /** Sees every chunk as the engine produces it (metrics); cheaper than wrapping the stream in another generator. */
  observe?: (chunk: GenerationChunk) => void;
  /** Add llama-server's `timings` to the whole answer, or to the stream's final chunk. */
  timings?: boolean;
}

/** A chunk kind added to GenerationChunk without a case here fails to compile (`never`), and fails loudly at run time. */
function unhandled(chunk: never): never {
  throw new Error(`unhandled generation chunk: ${JSON.stringify(chunk)}`);
}

function addUsage(total: Usage, u: Usage): void {
  total.promptTokens += u.promptTokens;
  total.completionTokens += u.completionTokens;
}

/**
 * Sends a generation as SSE or as one JSON object. Both paths consume the same chunk stream. Errors before the
 * first chunk (a prompt too long for the context, say) propagate, so they become a normal HTTP error response.
 */
export async function sendGeneration(options: SendGenerationOptions): Promise<unknown> {
  const { chunks, formatter, stream } = options;
  const usage: Usage = { promptTokens: 0, completionTokens: 0 };
  // Started now: the lease is held and the engine's generator has not run yet.
  const timer = options.timings ? new GenerationTimer() : null;
  const observe = timer
    ? (chunk: GenerationChunk) => {
        timer.chunk(chunk);
        options.observe?.(chunk);
      }
    : options.observe;
  if (!stream) {
    const choices = new Map<number, FoldedChoice>();
    const choice = (index: number) => {
      let c = choices.get(index);
      if (!c) choices.set(index, (c = { index, text: "", finishReason: null, toolCalls: [] }));
      return c;
    };
    for await (const chunk of chunks) {
      observe?.(chunk);
      switch (chunk.type) {
        case "text":
          choice(chunk.index).text += chunk.text;
          break;
        case "token_ids": {
          const c = choice(chunk.index);
          if (chunk.prompt) c.promptTokenIds = chunk.ids;
          else (c.tokenIds ??= []).push(...chunk.ids);
          break;
        }
        case "tool_call":
          choice(chunk.index).toolCalls[chunk.callIndex] = { id: chunk.id, name: chunk.name, arguments: chunk.arguments };
          break;
        case "tool_call_arguments": {
          const call = choice(chunk.index).toolCalls[chunk.callIndex];
          if (!call) throw new Error(`tool call arguments before the call started (choice ${chunk.index}, call ${chunk.callIndex})`);
          call.arguments += chunk.arguments;
          break;
        }
        case "finish":
          choice(chunk.index).finishReason = chunk.reason;
          break;
        case "logprobs": {
          // The entries come before their text: their offsets start where the choice's text ends now.
          const c = choice(chunk.index);
          (c.logprobs ??= []).push(...chunk.entries);
          (c.textOffsets ??= []).push(...textOffsets(chunk.entries, c.text.length));
          break;
        }
        case "usage":
          addUsage(usage, chunk.usage);
          break;
        default:
          unhandled(chunk);
      }
    }
    return formatter.whole(
      [...choices.values()].sort((a, b) => a.index - b.index),
      usage,
      timer?.timings(usage),
    );
  }
  return streamSse({ ...options, observe }, usage, timer);
}

async function streamSse(
  { request, reply, chunks, formatter, includeUsage, observe }: SendGenerationOptions,
  usage: Usage,
  timer: GenerationTimer | null,
): Promise<unknown> {
  // The engine keeps decoding while this loop writes: token generation and SSE writes overlap.
  const iterator = readAhead(chunks, 64, observe);
  const first = await iterator.next(); // may throw: still a normal HTTP error
  reply.hijack();
  const writer = new SseWriter(reply.raw);
  writer.start({ "x-request-id": String(request.id) });
  const started = new Set<number>();
  // return_token_ids: ids wait for the next event of their choice (the text they became, or the finish).
  const pendingIds = new Map<number, TokenIdsExtra>();
  const takeIds = (index: number) => {
    const ids = pendingIds.get(index);
    pendingIds.delete(index);
    return ids;
  };
  // logprobs: entries wait for the text they became (or the finish), like ids.
  const pendingLogprobs = new Map<number, LogprobEntry[]>();
  const takeLogprobs = (index: number) => {
    const entries = pendingLogprobs.get(index);
    pendingLogprobs.delete(index);
    return entries;
  };
  let out = "";
  // With timings, the latest finish waits: it is the final chunk (and carries them) unless something follows it.
  let heldFinish: { index: number; reason: FinishReason; ids?: TokenIdsExtra; logprobs?: LogprobEntry[] } | null = null;
  const flushFinish = (timings?: Timings) => {
    if (!heldFinish) return;
    const { index, reason, ids, logprobs } = heldFinish;
    heldFinish = null;
    out += SseWriter.event(formatter.finish(index, reason, ids, logprobs, timings));
  };
  const add = (chunk: GenerationChunk) => {
    if (chunk.type === "usage") {
      addUsage(usage, chunk.usage);
      return;
    }
    flushFinish();
    if (!started.has(chunk.index)) {
      started.add(chunk.index);
      const opening = formatter.start(chunk.index);
      if (opening) out += SseWriter.event(opening);
    }
    switch (chunk.type) {
      case "text":
        out += SseWriter.event(formatter.text(chunk.index, chunk.text, takeIds(chunk.index), takeLogprobs(chunk.index)));
        break;
      case "tool_call":
        // OpenAI's shape, which client stream helpers rely on: the first delta of a call carries its id, type and
        // name with empty arguments; the arguments follow in later deltas.
        out += SseWriter.event(formatter.toolCallStart(chunk.index, chunk.callIndex, chunk.id, chunk.name, takeIds(chunk.index)));
        if (chunk.arguments) out += SseWriter.event(formatter.toolCallArguments(chunk.index, chunk.callIndex, chunk.arguments));
        break;
      case "tool_call_arguments":
        out += SseWriter.event(formatter.toolCallArguments(chunk.index, chunk.callIndex, chunk.arguments, takeIds(chunk.index)));
        break;
      case "finish":
        if (timer) heldFinish = { index: chunk.index, reason: chunk.reason, ids: takeIds(chunk.index), logprobs: takeLogprobs(chunk.index) };
        else out += SseWriter.event(formatter.finish(chunk.index, chunk.reason, takeIds(chunk.index), takeLogprobs(chunk.index)));
        break;
      case "logprobs": {
        const entries = pendingLogprobs.get(chunk.index);
        if (entries) entries.push(...chunk.entries);
        else pendingLogprobs.set(chunk.index, [...chunk.entries]);
        break;
      }
      case "token_ids": {
        let ids = pendingIds.get(chunk.index);
        if (!ids) pendingIds.set(chunk.index, (ids = { tokenIds: [] }));
        if (chunk.prompt) ids.promptTokenIds = chunk.ids;
        else ids.tokenIds.push(...chunk.ids);
        break;
      }
      default:
        unhandled(chunk);
    }
  };
  try {
    let next = first;
    while (!next.done) {
      add(next.value);
      // Whatever the engine produced meanwhile goes out in the same write: one syscall, not one per token.
      for (const chunk of iterator.takeBuffered()) add(chunk);
      if (out) {
        await writer.write(out);
        out = "";
      }
      if (!writer.open) break;
      next = await iterator.next();
    }
    const timings = timer?.timings(usage);
    flushFinish(includeUsage ? undefined : timings);
    if (includeUsage) out += SseWriter.event(formatter.usage(usage, timings));
    await writer.write(out);
    await writer.done();
  } catch (err) {
    const mapped = toErrorEnvelope(err);
    if (writer.open) {
      request.log.error({ err }, "generation failed mid-stream");
      setStreamFailure(request, mapped.status);
      flushFinish();
      await writer.write(out);
      await writer.send(mapped.body);
    } else {
      // The connection's close has its line already ("request cancelled", buildApp).
      request.log.debug({ reason: (err as Error).message }, "stream ended: client gone");
    }
    writer.end();
  } finally {
    await iterator.return?.();
  }
  return reply;
}
