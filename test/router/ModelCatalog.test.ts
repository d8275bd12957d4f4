import { describe, expect, it } from "vitest";
import { ModelCatalog, downloadRefusal, type PendingModel } from "../../src/router/ModelCatalog.js";
import type { ModelDescriptor } from "../../src/core/types.js";
import { ModelRegistry } from "../../src/registry/ModelRegistry.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

const run = () => ({}) as never;

function catalog(models: ModelDescriptor[], aliases?: Record<string, string>) {
  return new ModelCatalog({ registry: new ModelRegistry(models), backends: { "node-llama-cpp": run, onnxruntime: run }, aliases });
}

const pending = (p: Partial<PendingModel> = {}): PendingModel => ({
  descriptor: testDescriptor({ id: "dl" }),
  state: "downloading",
  doneBytes: 0,
  totalBytes: 1000,
  bytesPerSecond: null,
  error: null,
  ...p,
});

describe("ModelCatalog.resolve", () => {
  it("fits each task to the endpoints that can serve it", () => {
    const c = catalog([
      testDescriptor({ id: "chat", task: "chat" }),
      testDescriptor({ id: "gen", task: "text-generation" }),
      testDescriptor({ id: "t2t", task: "text2text" }),
      testDescriptor({ id: "emb", task: "embeddings", engine: "onnxruntime" }),
    ]);
    expect(c.resolve("chat", "chat").id).toBe("chat");
    expect(c.resolve("chat", "completions").id).toBe("chat");
    expect(c.resolve("gen", "completions").id).toBe("gen");
    expect(c.resolve("t2t", "completions").id).toBe("t2t");
    expect(c.resolve("emb", "embeddings").id).toBe("emb");
    expect(() => c.resolve("chat", "embeddings")).toThrow(expect.objectContaining({ status: 400, code: "model_task_mismatch", param: "model" }));
    expect(() => c.resolve("emb", "chat")).toThrow(/embeddings model and cannot serve \/v1\/chat\/completions/);
    expect(() => c.resolve("t2t", "chat")).toThrow(expect.objectContaining({ code: "model_task_mismatch" }));
    // A model with no chat template is told to use completions.
    expect(() => c.resolve("gen", "chat")).toThrow(/no chat template.*use \/v1\/completions/);
  });

  it("answers 404 for an unknown id, 400 for a model no engine serves, 503 for an engine this daemon lacks", () => {
    const unknown = testDescriptor({ id: "odd", engine: null });
    unknown.detection = { ...unknown.detection, format: "unknown", reason: "no magic bytes", details: {} };
    const c = catalog([unknown, testDescriptor({ id: "remote", engine: "transformers" })]);
    expect(() => c.resolve("nope", "chat")).toThrow(expect.objectContaining({ status: 404, code: "model_not_found" }));
    expect(() => c.resolve("odd", "chat")).toThrow(expect.objectContaining({ status: 400, code: "model_not_servable" }));
    expect(() => c.resolve("odd", "chat")).toThrow(/format is not recognised \(no magic bytes\)/);
    expect(() => c.resolve("remote", "chat")).toThrow(expect.objectContaining({ status: 503, code: "engine_unavailable" }));
    expect(() => c.resolve("remote", "chat")).toThrow(/tabagent setup python/);
  });

  it("refuses chat on a model whose chat template is known bad, but still serves completions", () => {
    const c = catalog([testDescriptor({ id: "bad", chatTemplateProblem: "it hung" })]);
    expect(() => c.resolve("bad", "chat")).toThrow(expect.objectContaining({ code: "chat_template_unusable" }));
    expect(c.resolve("bad", "completions").id).toBe("bad");
  });

  it("resolves an alias to its model; a model with the alias's id wins", () => {
    const c = catalog([testDescriptor({ id: "a" }), testDescriptor({ id: "b" })], { fast: "a", b: "a" });
    expect(c.resolve("fast", "chat").id).toBe("a");
    expect(c.resolve("b", "chat").id).toBe("b");
    expect(c.lookup("missing")).toBeUndefined();
  });

  it("a model still downloading (by id or alias) answers 503 until finishPending", () => {
    const c = catalog([], { latest: "dl" });
    c.setPending("dl", pending({ doneBytes: 500, bytesPerSecond: 100 }));
    expect(() => c.resolve("dl", "chat")).toThrow(expect.objectContaining({ status: 503, code: "model_downloading", headers: { "retry-after": "5" } }));
    expect(() => c.resolve("latest", "chat")).toThrow(expect.objectContaining({ code: "model_downloading" }));
    c.finishPending("dl");
    expect(() => c.resolve("dl", "chat")).toThrow(expect.objectContaining({ code: "model_not_found" }));
  });

  it("a model in the registry wins over a pending pull of the same id", () => {
    const c = catalog([testDescriptor({ id: "dl" })]);
    c.setPending("dl", pending());
    expect(c.resolve("dl", "chat").id).toBe("dl");
  });
});

describe("downloadRefusal", () => {
  it("Retry-After is the remaining bytes at the current speed, 1 to 300 s; 30 s while the speed is unknown", () => {
    const headers = (p: PendingModel) => (downloadRefusal("dl", p) as unknown as { headers: Record<string, string> }).headers["retry-after"];
    expect(headers(pending({ doneBytes: 250, bytesPerSecond: 50 }))).toBe("15");
    expect(headers(pending({ bytesPerSecond: null }))).toBe("30");
    expect(headers(pending({ bytesPerSecond: 0 }))).toBe("30");
    expect(headers(pending({ doneBytes: 1000, bytesPerSecond: 10 }))).toBe("1");
    expect(headers(pending({ totalBytes: 1e9, bytesPerSecond: 1 }))).toBe("300");
    expect(downloadRefusal("dl", pending({ doneBytes: 250 })).message).toMatch(/25% of 1000 bytes/);
    expect(downloadRefusal("dl", pending({ totalBytes: 0 })).message).toMatch(/0% of 0 bytes/);
  });

  it("a failed pull says why, without Retry-After", () => {
    const err = downloadRefusal("dl", pending({ state: "download-failed", error: "gated" }));
    expect(err).toMatchObject({ status: 503, code: "model_download_failed", headers: {} });
    expect(err.message).toMatch(/gated/);
    expect(downloadRefusal("dl", pending({ state: "download-failed" })).message).toMatch(/unknown error/);
  });
});

describe("ModelCatalog.status", () => {
  it("lists models with their usage, then pulls in progress, then aliases in name order", () => {
    const c = catalog([testDescriptor({ id: "a" })], { zed: "a", alpha: "dl" });
    c.setPending("dl", pending({ doneBytes: 10 }));
    const rows = c.status((id) => (id === "a" ? { state: "loaded", running: 1, queued: 2, runtime: { engine: "x" } } : undefined));
    expect(rows.map((r) => [r.descriptor.id, r.state, r.aliasOf])).toEqual([
      ["a", "loaded", undefined],
      ["dl", "downloading", undefined],
      ["alpha", "downloading", "dl"],
      ["zed", "loaded", "a"],
    ]);
    expect(rows[0]).toMatchObject({ running: 1, queued: 2, runtime: { engine: "x" } });
    expect(rows[1]).toMatchObject({ download: { doneBytes: 10, totalBytes: 1000, error: null } });
    expect(c.modelStatus("zed", () => undefined)).toMatchObject({ state: "unloaded", aliasOf: "a", descriptor: { id: "zed" } });
    expect(c.modelStatus("alpha", () => undefined)).toMatchObject({ state: "downloading" });
    expect(c.modelStatus("none", () => undefined)).toBeUndefined();
  });
});
