import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { InvalidRequestError, ModelNotFoundError } from "../../core/errors.js";
import { backendOperation } from "../../backends/Backend.js";
import type { CompletionRequest, GenerationChunk, GenerationOptions } from "../../core/types.js";
import type { ModelRouter, ModelStatus } from "../../router/ModelRouter.js";
import { chatCompletionBodySchema, toChatRequest } from "../openai/chatCompletionSchema.js";
import { completionBodySchema, toCompletionRequests } from "../openai/completionSchema.js";
import { embeddingBodySchema, toEmbedRequest } from "../openai/embeddingSchema.js";
import { parseBody } from "../openai/parseBody.js";
import { chatFeatures, completionFeatures, embeddingFeatures } from "../openai/requestedFeatures.js";
import { chatFormatter, completionFormatter } from "../openai/responseFormatters.js";
import { sendGeneration } from "./sendGeneration.js";
import type { EngineName } from "../../core/detectionSchema.js";
import type { Capability } from "../../engines/capabilities.js";
import { ENGINES } from "../../engines/engineTable.js";
import type { GenerationMetrics } from "../GenerationMetrics.js";
import { requestStartedAt } from "../requestStartedAt.js";
import { requestSignal } from "../requestSignal.js";
import { rerankRoutes } from "./rerankRoutes.js";

export interface RequestLimits {
  maxTokensCap: number;
  maxMessages: number;
}

interface OpenAIRoutesOptions {
  router: ModelRouter;
  limits: RequestLimits;
  /** DaemonMetrics, or NO_METRICS when metrics are off. */
  metrics: GenerationMetrics;
  /** Aborted when the server gives up waiting for in-flight requests at shutdown. */
  shutdownSignal: AbortSignal;
  /** Config `timings`: answers carry `timings` unless the request says `"timings": false`. */
  timings?: boolean;
}

/** The engine's capabilities by name, as /v1/models shows them. */
function capabilityList(engine: EngineName): Capability[] {
  const caps = ENGINES[engine].capabilities;
  return (Object.keys(caps) as Capability[]).filter((c) => caps[c]);
}

function modelObject(s: ModelStatus) {
  const d = s.descriptor;
  const det = d.detection;
  if (d.upstream) {
    return {
      id: d.id,
      object: "model",
      created: d.created,
      owned_by: d.upstream.name,
      tabagent: {
        format: "upstream",
        engine: "upstream",
        upstream: d.upstream.name,
        upstream_model: d.upstream.model,
        base_url: d.path,
        capabilities: capabilityList("upstream"),
        state: s.state,
      },
    };
  }
  return {
    id: d.id,
    object: "model",
    created: d.created,
    owned_by: "tabagent",
    tabagent: {
      format: det.format,
      task: d.task,
      task_reason: det.reason,
      engine: d.engine,
      engine_reason: det.engine?.reason ?? null,
      alternatives: det.alternatives,
      capabilities: d.engine === null ? [] : capabilityList(d.engine),
      loaded: s.state === "loaded",
      state: s.state,
      architecture: det.architecture,
      parameters: det.parameterCount,
      quantization: det.quantization,
      context_length: det.contextLength,
      chat_template: det.hasChatTemplate,
      ...(d.chatTemplateProblem ? { chat_template_error: d.chatTemplateProblem } : {}),
      size_bytes: d.sizeBytes,
      warnings: det.warnings,
      ...(s.runtime ? { runtime: s.runtime } : {}),
      ...(s.aliasOf ? { alias_of: s.aliasOf } : {}),
      ...(s.download ? { download: { done_bytes: s.download.doneBytes, total_bytes: s.download.totalBytes, error: s.download.error } } : {}),
    },
  };
}

/** The body's fields the schema does not know (logged at debug level): passed on to upstream servers only. */
function unknownFields(request: FastifyRequest, known: readonly string[]): Record<string, unknown> | undefined {
  const body = request.body as Record<string, unknown>;
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length === 0) return undefined;
  request.log.debug({ fields: unknown }, "unknown request fields: passed to upstream servers, ignored by local engines");
  return Object.fromEntries(unknown.map((k) => [k, body[k]]));
}

/** Server-side caps on top of the schema: a request over one gets a 400 naming the parameter. */
function enforceLimits(options: GenerationOptions, body: { max_tokens?: number | null; max_completion_tokens?: number | null }, limits: RequestLimits): void {
  const asked = options.sampling.maxTokens;
  if (asked !== undefined && asked > limits.maxTokensCap) {
    const param = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    throw new InvalidRequestError(`'${param}' is ${asked}, more than this server allows (${limits.maxTokensCap}).`, { param, code: "limit_exceeded" });
  }
  // Every choice may generate max_tokens: n of them count against the cap together.
  if (asked !== undefined && options.n > 1 && options.n * asked > limits.maxTokensCap) {
    throw new InvalidRequestError(
      `'n' is ${options.n}; n × max_tokens (${options.n} × ${asked} = ${options.n * asked}) is more than this server allows (${limits.maxTokensCap}).`,
      { param: "n", code: "limit_exceeded" },
    );
  }
}

/** Times the generation from the request's arrival (queue wait and model load included). */
function observer(metrics: GenerationMetrics, model: string, reply: FastifyReply): (chunk: GenerationChunk) => void {
  const o = metrics.startGeneration(model, requestStartedAt(reply));
  return (chunk) => o.chunk(chunk);
}

export function openaiRoutes(app: FastifyInstance, { router, shutdownSignal, limits, metrics, timings = false }: OpenAIRoutesOptions): void {
  rerankRoutes(app, { router, shutdownSignal, metrics });

  app.get("/v1/models", async () => {
    await router.refreshUpstreams();
    return { object: "list", data: router.status().map(modelObject) };
  });

  app.get<{ Params: { id: string } }>("/v1/models/:id", async (request) => {
    if (!router.modelStatus(request.params.id)) await router.refreshUpstreams();
    const status = router.modelStatus(request.params.id);
    if (!status) throw new ModelNotFoundError(request.params.id);
    return modelObject(status);
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatCompletionBodySchema, request.body);
    const extraFields = unknownFields(request, Object.keys(chatCompletionBodySchema.shape));
    const signal = requestSignal(request, reply, shutdownSignal);
    await router.check(body.model, "chat", chatFeatures(body), signal);
    const chatRequest = { ...toChatRequest(body), extraFields };
    enforceLimits(chatRequest, body, limits);
    if (chatRequest.messages.length > limits.maxMessages) {
      throw new InvalidRequestError(`'messages' has ${chatRequest.messages.length} entries, more than this server allows (${limits.maxMessages}).`, {
        param: "messages",
        code: "limit_exceeded",
      });
    }
    const lease = await router.acquire(body.model, "chat", signal);
    try {
      const includeUsage = body.stream_options?.include_usage === true;
      return await sendGeneration({
        request,
        reply,
        chunks: backendOperation(lease.backend, "chat")(chatRequest, signal),
        observe: observer(metrics, body.model, reply),
        formatter: chatFormatter({ model: body.model, includeUsage, logprobs: chatRequest.logprobs !== null }),
        stream: body.stream === true,
        includeUsage,
        timings: body.timings ?? timings,
      });
    } finally {
      lease.release();
    }
  });

  app.post("/v1/completions", async (request, reply) => {
    const body = parseBody(completionBodySchema, request.body);
    const extraFields = unknownFields(request, Object.keys(completionBodySchema.shape));
    const signal = requestSignal(request, reply, shutdownSignal);
    await router.check(body.model, "completions", completionFeatures(body), signal);
    const requests = toCompletionRequests(body).map((r) => ({ ...r, extraFields }));
    for (const r of requests) enforceLimits(r, body, limits);
    const lease = await router.acquire(body.model, "completions", signal);
    try {
      const complete = backendOperation(lease.backend, "complete");
      const includeUsage = body.stream_options?.include_usage === true;
      return await sendGeneration({
        request,
        reply,
        chunks: completeAll(requests, (r) => complete(r, signal)),
        observe: observer(metrics, body.model, reply),
        formatter: completionFormatter({ model: body.model, includeUsage, logprobs: requests[0]!.logprobs !== null }),
        stream: body.stream === true,
        includeUsage,
        timings: body.timings ?? timings,
      });
    } finally {
      lease.release();
    }
  });

  app.post("/v1/embeddings", async (request, reply) => {
    const body = parseBody(embeddingBodySchema, request.body);
    const signal = requestSignal(request, reply, shutdownSignal);
    await router.check(body.model, "embeddings", embeddingFeatures(body), signal);
    const embedRequest = toEmbedRequest(body);
    const lease = await router.acquire(body.model, "embeddings", signal);
    try {
      const result = await backendOperation(lease.backend, "embed")(embedRequest, signal);
      metrics.observeTokens(body.model, result.promptTokens, 0);
      const base64 = body.encoding_format === "base64";
      return {
        object: "list",
        data: result.vectors.map((v, index) => ({
          object: "embedding",
          index,
          embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v,
        })),
        model: body.model,
        usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
      };
    } finally {
      lease.release();
    }
  });
}

/**
 * Several prompts run one after another on the same slot; prompt p's choice j (of n) is the choice p × n + j, as
 * OpenAI numbers them.
 */
async function* completeAll(requests: CompletionRequest[], run: (r: CompletionRequest) => AsyncIterable<GenerationChunk>): AsyncGenerator<GenerationChunk> {
  for (const [p, request] of requests.entries()) {
    const echoed = new Set<number>();
    for await (const chunk of run(request)) {
      if (chunk.type === "usage") {
        yield chunk;
        continue;
      }
      const index = p * request.n + chunk.index;
      // Echo only once the engine accepted the prompt, so a rejected prompt is still a plain HTTP error.
      if (request.echo && !echoed.has(index)) {
        echoed.add(index);
        yield { type: "text", index, text: request.prompt };
      }
      yield { ...chunk, index };
    }
  }
}
