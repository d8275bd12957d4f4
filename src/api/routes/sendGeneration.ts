import type { FastifyReply, FastifyRequest } from "fastify";
import type { GenerationChunk, Usage } from "../../core/types.js";
import { toErrorEnvelope } from "../openai/errorEnvelope.js";
import type { FoldedChoice, ResponseFormatter } from "../openai/responseFormatters.js";
import { SseWriter } from "../openai/SseWriter.js";
import { readAhead } from "../../backends/generation/readAhead.js";

export interface SendGenerationOptions {
  request: FastifyRequest;
  reply: FastifyReply;
  chunks: AsyncIterable<GenerationChunk>;
  formatter: ResponseFormatter;
  stream: boolean;
  includeUsage: boolean;
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
  if (!stream) {
    const choices = new Map<number, FoldedChoice>();
    const choice = (index: number) => {
      let c = choices.get(index);
      if (!c) choices.set(index, (c = { index, text: "", finishReason: null }));
      return c;
    };
    for await (const chunk of chunks) {
      if (chunk.type === "text") choice(chunk.index).text += chunk.text;
      else if (chunk.type === "finish") choice(chunk.index).finishReason = chunk.reason;
      else if (chunk.type === "usage") addUsage(usage, chunk.usage);
    }
    return formatter.whole([...choices.values()].sort((a, b) => a.index - b.index), usage);
  }
  return streamSse(options, usage);
}

async function streamSse({ request, reply, chunks, formatter, includeUsage }: SendGenerationOptions, usage: Usage): Promise<unknown> {
  // The engine keeps decoding while this loop writes: token generation and SSE writes overlap.
  const iterator = readAhead(chunks, 64);
  let next = await iterator.next(); // may throw: still a normal HTTP error
  reply.hijack();
  const writer = new SseWriter(reply.raw);
  writer.start({ "x-request-id": String(request.id) });
  const started = new Set<number>();
  const begin = async (index: number) => {
    if (started.has(index)) return;
    started.add(index);
    const first = formatter.start(index);
    if (first) await writer.send(first);
  };
  try {
    while (!next.done) {
      const chunk = next.value;
      if (chunk.type === "text") {
        await begin(chunk.index);
        await writer.send(formatter.text(chunk.index, chunk.text));
      } else if (chunk.type === "finish") {
        await begin(chunk.index);
        await writer.send(formatter.finish(chunk.index, chunk.reason));
      } else if (chunk.type === "usage") {
        addUsage(usage, chunk.usage);
      }
      if (!writer.open) break;
      next = await iterator.next();
    }
    if (includeUsage) await writer.send(formatter.usage(usage));
    await writer.done();
  } catch (err) {
    const mapped = toErrorEnvelope(err);
    if (writer.open) {
      request.log.error({ err }, "generation failed mid-stream");
      await writer.send(mapped.body);
    } else {
      request.log.info({ reason: (err as Error).message }, "stream ended: client gone");
    }
    writer.end();
  } finally {
    await iterator.return?.();
  }
  return reply;
}
