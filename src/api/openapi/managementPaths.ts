import type { OpenApiOperation, OpenApiResponse, Ref } from "./buildOpenApiDocument.js";

/** The names managementPaths refers to; buildOpenApiDocument registers the schemas under them. */
export type ManagementComponent =
  "ManagedModelList" | "ManagedModel" | "PullRequest" | "PullEvent" | "PullDone" | "LoadResult" | "UnloadResult" | "DeleteResult" | "System" | "Ps" | "Stats";

const ref = (name: ManagementComponent): Ref => ({ $ref: `#/components/schemas/${name}` });
const error = (name: string): Ref => ({ $ref: `#/components/responses/${name}` });
const requestIdHeader = { "x-request-id": { $ref: "#/components/headers/RequestId" } };
const json = (name: ManagementComponent, description: string): OpenApiResponse => ({
  description,
  headers: requestIdHeader,
  content: { "application/json": { schema: ref(name) } },
});
const idParameter = [
  { name: "id", in: "path" as const, required: true, description: "A model id as GET /api/models lists it, URL-encoded.", schema: { type: "string" } },
];
const WRITES =
  " Needs a trusted caller (the API key when keys are configured, from loopback too; on a daemon listening beyond loopback without keys: 403 `management_forbidden`), and is refused with 403 `read_only` when the config sets `readOnly`.";
const writeErrors = { "400": error("BadRequest"), "401": error("Unauthorized"), "403": error("Forbidden"), "404": error("ModelNotFound"), "500": error("ServerError") };
const op = (o: Omit<OpenApiOperation, "tags">): OpenApiOperation => ({ ...o, tags: ["Management"] });

/** The management API's paths (docs/api.md "Management API"). */
export function managementPaths(): Record<string, Partial<Record<"get" | "post" | "delete", OpenApiOperation>>> {
  return {
    "/api/models": {
      get: op({
        operationId: "managementListModels",
        summary: "Every known model: detection, engine and why, state, origin, estimated memory",
        responses: { "200": json("ManagedModelList", "The models."), "401": error("Unauthorized") },
      }),
    },
    "/api/models/pull": {
      post: op({
        operationId: "pullModel",
        summary: "Pull a model from the hub, with progress",
        description:
          "Same sources and checks as `tabagent pull`; resumes an interrupted download. The source and the hub listing are checked before the answer starts (plain HTTP errors); then progress streams as server-sent events, one `PullEvent` per `data:` line, ending with `done` (a `PullDone`) or `error` (an `ErrorEnvelope`'s `error`). Closing the connection stops the download; the partial file stays. The model is served at once." +
          WRITES,
        requestBody: { required: true, content: { "application/json": { schema: ref("PullRequest") } } },
        responses: {
          "200": {
            description: "Progress events, or with `stream: false` the `PullDone` object.",
            headers: requestIdHeader,
            content: {
              "text/event-stream": { schema: { type: "string" }, "x-tabagent-event-schema": ref("PullEvent") },
              "application/json": { schema: ref("PullDone") },
            },
          },
          ...writeErrors,
          "502": error("ServerError"),
        },
      }),
    },
    "/api/models/{id}/load": {
      post: op({
        operationId: "loadModel",
        summary: "Load a model now",
        description: "As a first request would (eviction and the memory budget apply); answers once it is loaded. Upstream models: 400 `model_not_local`." + WRITES,
        parameters: idParameter,
        responses: { "200": json("LoadResult", "Loaded."), ...writeErrors, "503": error("ServiceUnavailable") },
      }),
    },
    "/api/models/{id}/unload": {
      post: op({
        operationId: "unloadModel",
        summary: "Unload a model now",
        description: "Refused with 409 `model_busy` while requests run on or wait for it (it does not wait, and cuts nothing off)." + WRITES,
        parameters: idParameter,
        responses: { "200": json("UnloadResult", "Unloaded (or was not loaded)."), ...writeErrors, "409": error("Conflict") },
      }),
    },
    "/api/models/{id}": {
      delete: op({
        operationId: "deleteModel",
        summary: "Delete a model pulled into the store",
        description:
          "Only models the daemon keeps in its store (`removable: true`); anything else is 403 `not_removable` and nothing is touched. A loaded idle model is unloaded first; one in use is 409 `model_busy`." +
          WRITES,
        parameters: idParameter,
        responses: { "200": json("DeleteResult", "Deleted and no longer served."), ...writeErrors, "409": error("Conflict") },
      }),
    },
    "/api/system": {
      get: op({
        operationId: "system",
        summary: "The machine and engines (`tabagent doctor --json`), the daemon and memory",
        description: "The report is computed on first use and kept for 5 minutes; `?refresh=1` computes it again.",
        responses: { "200": json("System", "The report."), "401": error("Unauthorized") },
      }),
    },
    "/api/ps": {
      get: op({
        operationId: "ps",
        summary: "Loaded models, their estimated memory, and requests in flight",
        responses: { "200": json("Ps", "What is running."), "401": error("Unauthorized") },
      }),
    },
    "/api/stats": {
      get: op({
        operationId: "stats",
        summary: "Counters for rates (requests, prompt and generated tokens)",
        responses: { "200": json("Stats", "Totals since start."), "401": error("Unauthorized") },
      }),
    },
  };
}
