import { describe, expect, it } from "vitest";
import { hubErrorFromResponse, type HubRequestContext } from "../../../src/detection/hub/HubError.js";

const ctx: HubRequestContext = { hubUrl: "https://hub.test", repo: "acme/m", revision: "dev", path: "m.gguf", tokenSent: false };

const response = (status: number, headers: Record<string, string> = {}): Response => new Response(null, { status, headers });

describe("hubErrorFromResponse", () => {
  it.each([
    [response(404, { "X-Error-Code": "EntryNotFound" }), "not-found", "m.gguf not found in acme/m@dev"],
    [response(404, { "X-Error-Code": "RevisionNotFound" }), "not-found", "revision dev not found in acme/m"],
    [response(404, { "X-Error-Code": "RepoNotFound" }), "not-found", "repo acme/m not found on https://hub.test (or it is gated or private: set HF_TOKEN)"],
    [response(404), "not-found", "m.gguf not found in acme/m@dev"],
    [response(401, { "X-Error-Code": "GatedRepo" }), "unauthorized", "m.gguf in acme/m@dev: gated or private repo: set HF_TOKEN"],
    [response(403), "unauthorized", "m.gguf in acme/m@dev: gated or private repo: set HF_TOKEN"],
    [response(416), "bad-response", "m.gguf in acme/m@dev: range not satisfiable (did the file change on the hub?)"],
    [response(503, { "X-Error-Message": "Service Unavailable" }), "bad-response", "https://hub.test answered HTTP 503 for m.gguf in acme/m@dev: Service Unavailable"],
  ])("maps %#", (res, kind, message) => {
    const err = hubErrorFromResponse(res, ctx);
    expect(err.kind).toBe(kind);
    expect(err.status).toBe(res.status);
    expect(err.message).toBe(message);
  });

  it("says when a token was sent but not enough", () => {
    const err = hubErrorFromResponse(response(403, { "X-Error-Code": "GatedRepo" }), { ...ctx, tokenSent: true });
    expect(err.message).toContain("HF_TOKEN was rejected or has no access to it");
  });

  it("names the repo and revision when no path is involved", () => {
    expect(hubErrorFromResponse(response(404), { ...ctx, path: undefined }).message).toBe("repo or revision not found: acme/m@dev on https://hub.test");
  });
});
