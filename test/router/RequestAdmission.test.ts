import { describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/Backend.js";
import { ModelLoadingError, ServerBusyError } from "../../src/core/errors.js";
import type { Lease } from "../../src/router/ModelRunner.js";
import { loadingRetryAfterSeconds, queueRetryAfterSeconds, RequestAdmission, type AdmissionTarget } from "../../src/router/RequestAdmission.js";
import { testDescriptor } from "../helpers/testDescriptor.js";

const backend: Backend = { descriptor: testDescriptor(), parallel: 1, load: async () => undefined, unload: async () => undefined };
const signal = new AbortController().signal;

/** A model that grants leases at once (or fails), counting releases. */
function target(options: { loading?: boolean; fail?: Error } = {}) {
  const t = {
    acquired: 0,
    released: 0,
    loadingRefusal: () => (options.loading ? new ModelLoadingError("m", 7) : null),
    acquire: async (): Promise<Lease> => {
      if (options.fail) throw options.fail;
      t.acquired++;
      return { backend, release: () => t.released++ };
    },
  } satisfies AdmissionTarget & Record<string, unknown>;
  return t;
}

describe("RequestAdmission", () => {
  it("admits without limit by default and counts until each lease is released", async () => {
    const admission = new RequestAdmission();
    const t = target();
    const leases = await Promise.all(Array.from({ length: 50 }, () => admission.admit(t, signal)));
    expect(admission.admitted).toBe(50);
    for (const l of leases) l.release();
    expect(admission.admitted).toBe(0);
    expect(t.released).toBe(50);
  });

  it("past maxInflight answers 429 server_busy with Retry-After 1, without asking the model for a slot", async () => {
    const admission = new RequestAdmission({ maxInflight: 2 });
    const t = target();
    const a = await admission.admit(t, signal);
    await admission.admit(t, signal);
    const err = await admission.admit(t, signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerBusyError);
    expect(err).toMatchObject({ status: 429, code: "server_busy", headers: { "retry-after": "1" } });
    expect(t.acquired).toBe(2);
    a.release();
    await admission.admit(t, signal);
    expect(t.acquired).toBe(3);
  });

  it("past maxInflight while the model loads answers its 503 model_loading instead", async () => {
    const admission = new RequestAdmission({ maxInflight: 1 });
    await admission.admit(target(), signal);
    await expect(admission.admit(target({ loading: true }), signal)).rejects.toMatchObject({ status: 503, code: "model_loading", headers: { "retry-after": "7" } });
  });

  it("a request the model refuses (queue full, aborted, failed load) gives its place back", async () => {
    const admission = new RequestAdmission({ maxInflight: 1 });
    await expect(admission.admit(target({ fail: new Error("queue full") }), signal)).rejects.toThrow("queue full");
    expect(admission.admitted).toBe(0);
    (await admission.admit(target(), signal)).release();
  });

  it("releasing a lease twice gives back one place and releases the model's lease once", async () => {
    const admission = new RequestAdmission({ maxInflight: 2 });
    const t = target();
    const a = await admission.admit(t, signal);
    await admission.admit(t, signal);
    a.release();
    a.release();
    expect(admission.admitted).toBe(1);
    expect(t.released).toBe(1);
  });

  it("after close every request answers 503 shutting_down; leases already out still release", async () => {
    const admission = new RequestAdmission();
    const t = target();
    const lease = await admission.admit(t, signal);
    admission.close();
    await expect(admission.admit(t, signal)).rejects.toMatchObject({ status: 503, code: "shutting_down" });
    expect(t.acquired).toBe(1);
    lease.release();
    expect(admission.admitted).toBe(0);
  });
});

describe("Retry-After values", () => {
  it("a full queue: one round of the model's slots per queued request, at least 1 s", () => {
    expect(queueRetryAfterSeconds(0, 1)).toBe(1);
    expect(queueRetryAfterSeconds(4, 1)).toBe(4);
    expect(queueRetryAfterSeconds(4, 2)).toBe(2);
    expect(queueRetryAfterSeconds(5, 2)).toBe(3);
    expect(queueRetryAfterSeconds(3, 0)).toBe(3); // a backend reporting no parallelism counts as 1
  });

  it("a loading model: the rest of the last load, or as long again as this first load has taken, 1 to 60 s", () => {
    expect(loadingRetryAfterSeconds(2000, 10_000)).toBe(8);
    expect(loadingRetryAfterSeconds(2500, null)).toBe(3);
    expect(loadingRetryAfterSeconds(0, null)).toBe(1);
    expect(loadingRetryAfterSeconds(15_000, 10_000)).toBe(1); // slower than last time: soon
    expect(loadingRetryAfterSeconds(0, 600_000)).toBe(60);
    expect(loadingRetryAfterSeconds(45_000, null)).toBe(45);
    expect(loadingRetryAfterSeconds(90_000, null)).toBe(60);
  });
});
