import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { detectSource } from "../detection/detectSource.js";
import { looksLikeHubSource } from "../detection/hub/parseHubSource.js";
import type { DaemonClient } from "./DaemonClient.js";
import { HostError } from "./HostError.js";
import { relayGeneration } from "./relayGeneration.js";

/** What an action gets: its parameters (the request minus `id` and `action`), the daemon, a signal and events. */
export interface ActionContext {
  params: Record<string, unknown>;
  /** The running daemon (started first when the config allows it). */
  daemon: () => Promise<DaemonClient>;
  signal: AbortSignal;
  /** Sends `{id, event, ...fields}` to the browser; resolves once the pipe has taken it (backpressure). */
  emit: (event: string, fields: Record<string, unknown>) => Promise<void>;
  /** Cancels another request of this connection by its id; whether one was in flight. */
  cancel: (target: string | number) => boolean;
  /** The hub models.detect reads headers from. */
  hub: { url: string | undefined; token: string | undefined };
  version: string;
}

export type ActionHandler = (ctx: ActionContext) => Promise<unknown>;

/** Parses an action's parameters; the first problem names its field, and unknown fields are refused, never ignored. */
function parse<T extends z.ZodType>(schema: T, params: Record<string, unknown>): z.infer<T> {
  const r = schema.safeParse(params);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.code === "unrecognized_keys" ? issue.keys[0] : issue.path.join(".");
  const what = issue.code === "unrecognized_keys" ? `unknown parameter '${param}'` : `${param || "parameters"}: ${issue.message}`;
  throw new HostError("invalid_request", what, { param: param || undefined });
}

const none = z.strictObject({});
const modelRef = z.strictObject({ model: z.string().min(1).max(256) });
const pullParams = z.strictObject({ source: z.string().min(1).max(512) });
const detectParams = z.strictObject({ source: z.string().min(1).max(512) });
const cancelParams = z.strictObject({ target: z.union([z.string().min(1).max(256), z.number().int()]) });
const systemParams = z.strictObject({ refresh: z.boolean().optional() });
/** Generation and embedding bodies are the daemon's to validate (it names a bad field); only an object is required here. */
const body = z.record(z.string(), z.unknown());

const modelPath = (id: string) => `/api/models/${encodeURIComponent(id)}`;

/** Every action the host answers, by name. */
export const HOST_ACTIONS: Record<string, ActionHandler> = {
  async ping(ctx) {
    parse(none, ctx.params);
    const client = await ctx.daemon();
    const health = (await client.json("GET", "/health", undefined, ctx.signal)) as { version?: unknown } | null;
    return { pong: true, host: ctx.version, daemon: { url: client.target.url, version: health?.version ?? null } };
  },

  async status(ctx) {
    parse(none, ctx.params);
    const client = await ctx.daemon();
    const [health, models, ps] = await Promise.all([
      client.json("GET", "/health", undefined, ctx.signal) as Promise<{ version?: unknown } | null>,
      client.json("GET", "/api/models", undefined, ctx.signal) as Promise<{ models?: Record<string, unknown>[] }>,
      client.json("GET", "/api/ps", undefined, ctx.signal) as Promise<{ inflight?: unknown; memory?: unknown }>,
    ]);
    return {
      host: ctx.version,
      daemon: { url: client.target.url, version: health?.version ?? null },
      models: (models.models ?? []).map((m) => ({ id: m.id, state: m.state, task: m.task, engine: m.engine, format: m.format, running: m.running, queued: m.queued })),
      inflight: ps.inflight ?? null,
      memory: ps.memory ?? null,
    };
  },

  async system(ctx) {
    const p = parse(systemParams, ctx.params);
    return (await ctx.daemon()).json("GET", `/api/system${p.refresh ? "?refresh=1" : ""}`, undefined, ctx.signal);
  },

  async "models.list"(ctx) {
    parse(none, ctx.params);
    return (await ctx.daemon()).json("GET", "/api/models", undefined, ctx.signal);
  },

  async "models.detect"(ctx) {
    const { source } = parse(detectParams, ctx.params);
    // Only hub repos: a browser extension must not make the host read arbitrary local paths.
    if (!looksLikeHubSource(source) || existsSync(resolve(source))) {
      throw new HostError("invalid_source", "source must be a Hugging Face repo id owner/name[@revision][:file]; local paths are not read", { param: "source" });
    }
    const { hubOpener } = await import("../detection/openHubSource.js");
    const openRemote = hubOpener({ hubUrl: ctx.hub.url, token: ctx.hub.token });
    try {
      return { detections: await detectSource(source, { openRemote, signal: ctx.signal }) };
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new HostError("detection_failed", `${source}: ${(err as Error).message}`, { param: "source" });
    }
  },

  async "models.pull"(ctx) {
    const { source } = parse(pullParams, ctx.params);
    const client = await ctx.daemon();
    let done: unknown = null;
    for await (const { data } of client.stream("POST", "/api/models/pull", { source, stream: true }, ctx.signal)) {
      const e = data as { type?: unknown; error?: { message?: string; code?: string | null; type?: string } };
      if (e.type === "error") throw new HostError(e.error?.code ?? e.error?.type ?? "download_failed", e.error?.message ?? "the pull failed");
      if (e.type === "done") done = e;
      else await ctx.emit("progress", { progress: e });
    }
    if (done === null) throw new HostError("download_failed", "the daemon's pull stream ended before it was done");
    return done;
  },

  async "models.load"(ctx) {
    const { model } = parse(modelRef, ctx.params);
    return (await ctx.daemon()).json("POST", `${modelPath(model)}/load`, {}, ctx.signal);
  },

  async "models.unload"(ctx) {
    const { model } = parse(modelRef, ctx.params);
    return (await ctx.daemon()).json("POST", `${modelPath(model)}/unload`, {}, ctx.signal);
  },

  async "models.delete"(ctx) {
    const { model } = parse(modelRef, ctx.params);
    return (await ctx.daemon()).json("DELETE", modelPath(model), undefined, ctx.signal);
  },

  async chat(ctx) {
    return relayGeneration("chat", parse(body, ctx.params), ctx);
  },

  async completions(ctx) {
    return relayGeneration("completions", parse(body, ctx.params), ctx);
  },

  async embeddings(ctx) {
    return (await ctx.daemon()).json("POST", "/v1/embeddings", parse(body, ctx.params), ctx.signal);
  },

  async rerank(ctx) {
    return (await ctx.daemon()).json("POST", "/v1/rerank", parse(body, ctx.params), ctx.signal);
  },

  async cancel(ctx) {
    const { target } = parse(cancelParams, ctx.params);
    return { target, cancelled: ctx.cancel(target) };
  },
};
