import type { Capability } from "../../engines/capabilities.js";
import { enginesWith } from "../../engines/engineTable.js";
import { z } from "zod";
import { chatCompletionBodySchema } from "../openai/chatCompletionSchema.js";
import { completionBodySchema } from "../openai/completionSchema.js";
import { embeddingBodySchema } from "../openai/embeddingSchema.js";
import { MAX_RERANK_CHARACTERS, MAX_RERANK_DOCUMENTS, rerankBodySchema, rerankResponseSchema } from "../openai/rerankSchema.js";
import { REFUSED_EXTENSIONS } from "../openai/samplerExtensions.js";
import {
  chatCompletionChunkSchema,
  chatCompletionResponseSchema,
  completionChunkSchema,
  completionResponseSchema,
  embeddingResponseSchema,
  errorEnvelopeSchema,
  healthSchema,
  localModelExtensionSchema,
  modelListSchema,
  modelSchema,
  readySchema,
  upstreamModelExtensionSchema,
  usageSchema,
} from "./responseSchemas.js";
import {
  deleteResultSchema,
  loadResultSchema,
  managedModelListSchema,
  managedModelSchema,
  psSchema,
  pullDoneSchema,
  pullEventSchema,
  pullRequestSchema,
  statsSchema,
  systemSchema,
  timingsSchema,
  unloadResultSchema,
} from "./managementSchemas.js";
import { managementPaths, type ManagementComponent } from "./managementPaths.js";

/** A JSON Schema (2020-12, which OpenAPI 3.1 uses as is) or a `{"$ref": ...}`. */
export type JsonSchema = { [key: string]: unknown };
export type Ref = { $ref: string };

export interface OpenApiMediaType {
  schema: JsonSchema;
  example?: unknown;
  /** For `text/event-stream`: the schema of each event's JSON (OpenAPI 3.1 has no way to say it natively). */
  "x-tabagent-event-schema"?: Ref;
}

export interface OpenApiHeader {
  description: string;
  schema: JsonSchema;
}

export interface OpenApiResponse {
  description: string;
  headers?: Record<string, OpenApiHeader | Ref>;
  content?: Record<string, OpenApiMediaType>;
}

export interface OpenApiParameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: OpenApiParameter[];
  requestBody?: { required: boolean; content: Record<string, OpenApiMediaType> };
  responses: Record<string, OpenApiResponse | Ref>;
}

export type HttpMethod = "get" | "post" | "delete";

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  paths: Record<string, Partial<Record<HttpMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, OpenApiResponse>;
    headers: Record<string, OpenApiHeader>;
  };
}

export interface OpenApiOptions {
  /** `info.version`: the daemon's version. Default "dev". */
  version?: string;
}

/** Every schema that becomes a component, by its component name. Request bodies keep their wire names. */
const COMPONENTS = {
  ChatCompletionRequest: chatCompletionBodySchema,
  CompletionRequest: completionBodySchema,
  EmbeddingRequest: embeddingBodySchema,
  ChatCompletion: chatCompletionResponseSchema,
  ChatCompletionChunk: chatCompletionChunkSchema,
  Completion: completionResponseSchema,
  CompletionChunk: completionChunkSchema,
  EmbeddingList: embeddingResponseSchema,
  RerankRequest: rerankBodySchema,
  RerankList: rerankResponseSchema,
  Usage: usageSchema,
  Model: modelSchema,
  LocalModelExtension: localModelExtensionSchema,
  UpstreamModelExtension: upstreamModelExtensionSchema,
  ModelList: modelListSchema,
  ErrorEnvelope: errorEnvelopeSchema,
  Health: healthSchema,
  Ready: readySchema,
  Timings: timingsSchema,
  ManagedModel: managedModelSchema,
  ManagedModelList: managedModelListSchema,
  PullRequest: pullRequestSchema,
  PullEvent: pullEventSchema,
  PullDone: pullDoneSchema,
  LoadResult: loadResultSchema,
  UnloadResult: unloadResultSchema,
  DeleteResult: deleteResultSchema,
  System: systemSchema,
  Ps: psSchema,
  Stats: statsSchema,
} satisfies Record<string, z.ZodType> & Record<ManagementComponent, z.ZodType>;

type ComponentName = keyof typeof COMPONENTS;

/** Prose from the engine table, so the docs follow when an engine gains a capability. */
function needs(capability: Capability, neutral: string): string {
  const engines = enginesWith(capability);
  const who = engines.length > 0 ? `the engines that support it: ${engines.join(", ")}` : "no engine supports it yet";
  return `${neutral} Otherwise it needs the \`${capability}\` capability (${who}); other engines answer 400 \`unsupported_parameter\` naming it and the engine.`;
}
const IGNORED = "Accepted; does not change results.";

/** What docs/api.md says about each request field; the wire schemas carry constraints but no prose. */
const GENERATION_FIELDS: Record<string, string> = {
  model: "A served model id (GET /v1/models).",
  stream: "Server-sent events when true.",
  stream_options: "`include_usage: true` adds a final chunk with `usage` and `choices: []`; other chunks carry `usage: null`.",
  max_tokens: "Upper bound on generated tokens; default: until the context is full.",
  temperature: "Default 1; 0 is greedy (deterministic).",
  top_p: "Nucleus sampling.",
  seed: "No seed: a fresh random seed per request. A given seed reproduces the output on the same engine and build.",
  stop: "Up to 16 strings; generation ends before the first match, which is not returned.",
  presence_penalty: "Over the last 64 generated tokens.",
  frequency_penalty: "Over the last 64 generated tokens.",
  n: needs("multipleChoices", "1 always works."),
  logprobs: needs("logprobs", "`false` or null always works."),
  top_logprobs: needs("logprobs", "0 or null always works."),
  logit_bias: needs("logitBias", "An empty object always works."),
  response_format: `\`{"type":"text"}\` always works; \`json_object\`: ${needs("jsonObject", "")} \`json_schema\`: ${needs("jsonSchema", "")}`,
  tools: needs("tools", "An empty list always works."),
  tool_choice: needs("tools", "`none` or `auto` always work."),
  functions: needs("tools", "An empty list always works (the deprecated spelling of `tools`)."),
  function_call: needs("tools", "`none` or `auto` always work."),
  return_token_ids: needs("tokenIds", "`false` always works; the ids come as vLLM returns them."),
  top_k: "Keep the k most likely tokens; 0 (default) = off. A llama.cpp / vLLM extension; every engine applies it.",
  min_p: "Keep tokens at least `min_p` times as likely as the most likely one; 0 (default) = off.",
  repeat_penalty:
    "llama.cpp's repeat penalty over the last 64 tokens of prompt and answer (a positive logit divided by it, a negative one multiplied); 1 (default) = off.",
  repetition_penalty: "vLLM's spelling of `repeat_penalty`; both set to different values is a 400.",
  ...Object.fromEntries(
    Object.entries(REFUSED_EXTENSIONS).map(([name, ext]) => [
      name,
      `A ${ext.from} extension that no engine here implements: 400 \`unsupported_parameter\` unless neutral (null always works).`,
    ]),
  ),
  user: IGNORED,
  metadata: IGNORED,
  timings:
    "tabagent: true adds llama-server's `timings` (prompt_n, prompt_ms, predicted_n, predicted_ms and both rates) to the answer, or to a stream's final chunk; any engine. Default: the config `timings` (off).",
};

const FIELD_DOCS: Partial<Record<ComponentName, Record<string, string>>> = {
  ChatCompletionRequest: {
    ...GENERATION_FIELDS,
    messages:
      "Roles `system`, `developer` (treated as system), `user`, `assistant`; `content` is a string or an array of text parts. " +
      "A trailing assistant message is continued. `tool` and `function` messages and assistant `tool_calls` need the `tools` capability; " +
      "`image_url`, `input_audio` and `file` parts need `images`, `audio` and `files`.",
    max_completion_tokens: "Wins over `max_tokens` when both are set.",
    parallel_tool_calls: IGNORED,
    store: IGNORED,
    modalities: needs("audio", '`["text"]` always works.'),
    audio: needs("audio", "null always works."),
    prediction: needs("prediction", "null always works."),
    reasoning_effort: needs("reasoning", "null always works."),
    service_tier: IGNORED,
  },
  CompletionRequest: {
    ...GENERATION_FIELDS,
    logprobs: needs("logprobs", "0 or null always works."),
    prompt: "A string, or up to 64 strings: one choice per prompt, `index` in order, usage summed.",
    echo: "Prepends the prompt to the text.",
    suffix: needs("suffix", "An empty string or null always works."),
    best_of: needs("multipleChoices", "1 always works."),
  },
  EmbeddingRequest: {
    model: GENERATION_FIELDS.model!,
    input:
      "A non-empty string, up to 2048 of them, an array of token ids (one input) or up to 2048 arrays of token ids. Ids are embedded as given; one outside the vocabulary is a 400 naming it.",
    encoding_format: "`float` (default) or `base64` (little-endian float32).",
    dimensions: needs("embeddingDimensions", "null always works."),
    user: IGNORED,
  },
  RerankRequest: {
    model: "A model whose task is `rerank` (see /v1/models).",
    query: "The text the documents are scored against.",
    documents: `1 to ${MAX_RERANK_DOCUMENTS} strings or \`{"text": ...}\` objects; the query and documents hold at most ${MAX_RERANK_CHARACTERS} characters together. A document that with the query is longer than the model reads is a 400 naming it.`,
    top_n: "How many results to return, best first; default all.",
    return_documents: "Whether each result carries `document.text`; default true.",
  },
};

function describeFields(schemas: Record<string, JsonSchema>): void {
  for (const [name, fields] of Object.entries(FIELD_DOCS)) {
    const properties = schemas[name]?.properties as Record<string, JsonSchema> | undefined;
    if (!properties) continue;
    for (const [field, description] of Object.entries(fields)) {
      const property = properties[field];
      // A copy: zod may hand the same object to two components that share a field schema.
      if (property && property.description === undefined) properties[field] = { ...property, description };
    }
  }
}

const ref = (name: ComponentName): Ref => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (name: string): Ref => ({ $ref: `#/components/responses/${name}` });
const requestIdHeader = { "x-request-id": { $ref: "#/components/headers/RequestId" } };

/** Zod schemas → JSON Schemas that reference one another as `#/components/schemas/Name`. */
function componentSchemas(): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    target: "draft-2020-12",
    // Request bodies as a client writes them: fields with defaults stay optional.
    io: "input",
    // Anything JSON Schema cannot say (none today) becomes `{}` rather than failing the whole document.
    unrepresentable: "any",
    uri: (id) => `#/components/schemas/${id}`,
  });
  if ("__shared" in schemas) throw new Error("buildOpenApiDocument: a schema produced shared $defs; register it as a component");
  const out: Record<string, JsonSchema> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    // Each component is embedded in the document: no `$schema` of its own, and no `$id` (a fragment-only `$id`
    // is not allowed in 2020-12; the component's place in the document is its identity).
    const { $schema: _schema, $id: _id, ...rest } = schema as JsonSchema;
    out[name] = rest;
  }
  describeFields(out);
  return out;
}

function json(name: ComponentName, description: string): OpenApiResponse {
  return { description, headers: requestIdHeader, content: { "application/json": { schema: ref(name) } } };
}

function generation(kind: "chat" | "completion"): OpenApiOperation {
  const chat = kind === "chat";
  const whole: ComponentName = chat ? "ChatCompletion" : "Completion";
  const chunk: ComponentName = chat ? "ChatCompletionChunk" : "CompletionChunk";
  return {
    operationId: chat ? "createChatCompletion" : "createCompletion",
    summary: chat ? "Chat completion, streamed or not" : "Text completion, streamed or not",
    description:
      (chat ? "Chat models only (a GGUF with a chat template). " : "Chat and plain text-generation models; an array `prompt` gives one choice per prompt. ") +
      "Parameters that would change results but are not implemented are refused with 400 `unsupported_parameter`; " +
      "harmless unknown fields are accepted. With `stream: true` the answer is server-sent events: one " +
      `\`${chunk}\` per \`data:\` line, then \`data: [DONE]\`. An error after the stream started arrives as one ` +
      "`ErrorEnvelope` event, then the stream closes.",
    tags: ["OpenAI"],
    requestBody: {
      required: true,
      content: { "application/json": { schema: ref(chat ? "ChatCompletionRequest" : "CompletionRequest") } },
    },
    responses: {
      "200": {
        description: "The completion: one JSON object, or with `stream: true` an event stream.",
        headers: requestIdHeader,
        content: {
          "application/json": { schema: ref(whole) },
          "text/event-stream": {
            schema: { type: "string", description: `Server-sent events: \`data: <${chunk} JSON>\` lines, last \`data: [DONE]\`.` },
            "x-tabagent-event-schema": ref(chunk),
            example: chat
              ? 'data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":1795695772,"model":"tiny-chat","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}]}\n\ndata: [DONE]\n\n'
              : 'data: {"id":"cmpl-…","object":"text_completion","created":1795695772,"model":"tiny-chat","system_fingerprint":null,"choices":[{"index":0,"text":"Hel","logprobs":null,"finish_reason":null}]}\n\ndata: [DONE]\n\n',
          },
        },
      },
      ...generationErrors(),
    },
  };
}

function generationErrors(): Record<string, Ref> {
  return {
    "400": errorResponse("BadRequest"),
    "404": errorResponse("ModelNotFound"),
    "413": errorResponse("PayloadTooLarge"),
    "415": errorResponse("UnsupportedMediaType"),
    "429": errorResponse("TooManyRequests"),
    "500": errorResponse("ServerError"),
    "503": errorResponse("ServiceUnavailable"),
  };
}

function errorComponent(description: string, headers?: Record<string, OpenApiHeader | Ref>): OpenApiResponse {
  return {
    description,
    headers: { ...requestIdHeader, ...headers },
    content: { "application/json": { schema: ref("ErrorEnvelope") } },
  };
}

/**
 * The daemon's HTTP API as an OpenAPI 3.1 document. Request bodies come from the same zod schemas that validate
 * them; responses from responseSchemas.ts. Build it once and cache it (registerDocsRoutes does).
 */
export function buildOpenApiDocument({ version = "dev" }: OpenApiOptions = {}): OpenApiDocument {
  return {
    openapi: "3.1.0",
    info: {
      title: "TabAgent",
      version,
      description:
        "A local inference daemon with an OpenAI-compatible API. Bodies are JSON (`content-type: application/json`); " +
        "every response carries `x-request-id`; every non-2xx response is an `ErrorEnvelope`.",
    },
    tags: [
      { name: "OpenAI", description: "The OpenAI wire format." },
      { name: "Operations", description: "Health, readiness, metrics and this document." },
      { name: "Management", description: "Models, pulls, load, unload, delete, the system report and what is running (under /api)." },
    ],
    paths: {
      "/v1/chat/completions": { post: generation("chat") },
      "/v1/completions": { post: generation("completion") },
      "/v1/embeddings": {
        post: {
          operationId: "createEmbedding",
          summary: "Embeddings",
          description: 'Embedding models only. Vectors are L2-normalised. An input longer than the model\'s context is a 400 naming it (`param: "input[3]"`).',
          tags: ["OpenAI"],
          requestBody: { required: true, content: { "application/json": { schema: ref("EmbeddingRequest") } } },
          responses: { "200": json("EmbeddingList", "One vector per input, in order."), ...generationErrors() },
        },
      },
      "/v1/rerank": {
        post: {
          operationId: "rerank",
          summary: "Rerank documents against a query",
          description:
            "Reranker models only (task `rerank`): the Jina/Cohere shape llama-server and vLLM serve, also at `/v1/reranking`, `/rerank` and `/reranking`. Results are sorted by `relevance_score`, highest first.",
          tags: ["OpenAI"],
          requestBody: { required: true, content: { "application/json": { schema: ref("RerankRequest") } } },
          responses: { "200": json("RerankList", "The documents by score, cut to `top_n`."), ...generationErrors() },
        },
      },
      "/v1/models": {
        get: {
          operationId: "listModels",
          summary: "Every served model",
          tags: ["OpenAI"],
          responses: { "200": json("ModelList", "The models, local ones first, each with its `tabagent` extension."), "500": errorResponse("ServerError") },
        },
      },
      "/v1/models/{id}": {
        get: {
          operationId: "retrieveModel",
          summary: "One model",
          tags: ["OpenAI"],
          parameters: [{ name: "id", in: "path", required: true, description: "A served model id.", schema: { type: "string" } }],
          responses: { "200": json("Model", "The model."), "404": errorResponse("ModelNotFound"), "500": errorResponse("ServerError") },
        },
      },
      ...managementPaths(),
      "/health": {
        get: {
          operationId: "health",
          summary: "Liveness and model states",
          description: "200 while the process serves at all; which models are loaded, running and queued.",
          tags: ["Operations"],
          responses: { "200": json("Health", "The daemon is serving.") },
        },
      },
      "/ready": {
        get: {
          operationId: "ready",
          summary: "Readiness",
          description: "503 with the reason as `code` (`draining` while shutting down) when new work should go elsewhere.",
          tags: ["Operations"],
          responses: { "200": json("Ready", "Ready for requests."), "503": errorResponse("ServiceUnavailable") },
        },
      },
      "/metrics": {
        get: {
          operationId: "metrics",
          summary: "Prometheus metrics",
          description:
            "Requests, durations, tokens, time to first token, inter-token latency, queue depth, running requests, " +
            "loaded models, load times, child restarts, and the Node process metrics.",
          tags: ["Operations"],
          responses: {
            "200": {
              description: "The Prometheus text exposition format 0.0.4.",
              content: { "text/plain; version=0.0.4; charset=utf-8": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document",
          tags: ["Operations"],
          responses: { "200": { description: "OpenAPI 3.1.", content: { "application/json": { schema: { type: "object" } } } } },
        },
      },
      "/docs": {
        get: {
          operationId: "docs",
          summary: "This document as a page",
          tags: ["Operations"],
          responses: { "200": { description: "HTML without scripts.", content: { "text/html": { schema: { type: "string" } } } } },
        },
      },
    },
    components: {
      schemas: componentSchemas(),
      responses: {
        BadRequest: errorComponent(
          "Invalid JSON or body (`invalid_json`; `invalid_body`, which includes a `__proto__` or `constructor.prototype` " +
            "key, named in `param`), a schema violation naming `param` (`invalid_value` for a value of the wrong type or " +
            "range, `missing_required_parameter` for an absent one), `unsupported_parameter`, `model_task_mismatch`, " +
            "`model_not_servable`, `context_length_exceeded`; malformed HTTP (`malformed_request`, `invalid_framing`, " +
            "`missing_host`, `invalid_url`).",
        ),
        ModelNotFound: errorComponent('Unknown model id (`model_not_found`, `param: "model"`).'),
        PayloadTooLarge: errorComponent("Body over the server's limit (`request_too_large`)."),
        UnsupportedMediaType: errorComponent("A content type other than JSON (`unsupported_media_type`)."),
        TooManyRequests: errorComponent("Every slot busy and the wait queue full (`queue_full`).", {
          "retry-after": { description: "Seconds to wait before retrying.", schema: { type: "integer", minimum: 1 } },
        }),
        Unauthorized: errorComponent("API keys are configured and none, or a wrong one, was sent (`invalid_api_key`).", {
          "www-authenticate": { description: "`Bearer`.", schema: { type: "string" } },
        }),
        Forbidden: errorComponent(
          "Refused: `read_only` (config readOnly), `management_forbidden` (no keys on a daemon listening beyond loopback), `not_removable` (a model it did not pull), `repo_gated` (the hub wants a token), `host_not_allowed`.",
        ),
        Conflict: errorComponent("`model_busy`: requests run on or wait for the model; retry once they are done."),
        ServerError: errorComponent("Anything unexpected (`server_error`); details are in the log, by request id."),
        ServiceUnavailable: errorComponent(
          "`model_load_failed`, `engine_unavailable`, `shutting_down` (a request arriving on a kept-alive connection " +
            "while the daemon drains; the connection is closed after it), or from /ready the reason it is not ready.",
        ),
      },
      headers: {
        RequestId: { description: "The caller's `x-request-id` when it is safe to log, else a UUID.", schema: { type: "string" } },
      },
    },
  };
}
