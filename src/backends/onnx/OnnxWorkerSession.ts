import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { InferenceSession, Tensor } from "onnxruntime-node";
import { float16ToFloat32 } from "./float16ToFloat32.js";

/** What the engine uses of an ONNX Runtime session; OnnxWorkerSession provides it from a worker thread. */
export type OnnxRunner = Pick<InferenceSession, "inputMetadata" | "outputMetadata" | "inputNames" | "outputNames"> & {
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  step(request: DecodeStep): Promise<Float32Array>;
  dropState(state: number): void;
  release(): Promise<void>;
};

/** One KV-cache pair: `present.*` of a step is fed back as `past_key_values.*` of the next. */
export interface CacheSpec {
  input: string;
  output: string;
  type: string;
  heads: number;
  headDim: number;
}

/** A decode step whose KV cache stays in the worker, under `state`: only ids go in and one logits row comes out. */
export interface DecodeStep {
  state: number;
  feeds: Record<string, Tensor>;
  cache: readonly CacheSpec[];
  logits: string;
}

type OrtModule = typeof import("onnxruntime-node");

interface WireTensor {
  type: Tensor.Type;
  data: Tensor.DataType;
  dims: readonly number[];
}

type Reply =
  | {
      id: number;
      ok: true;
      inputMetadata?: InferenceSession["inputMetadata"];
      outputMetadata?: InferenceSession["outputMetadata"];
      outputs?: Record<string, WireTensor>;
      row?: Float32Array;
    }
  | { id: number; ok: false; message: string };

// Plain JavaScript, run with `eval`: the same code serves src/ (tests, tsx) and dist/ without a separate file.
// float16ToFloat32 is spliced in as source: it uses nothing but its argument.
const WORKER_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const ort = require(workerData.ortPath);
let session = null;
const states = new Map();
const toFloat32 = ${float16ToFloat32.toString()};
const buffers = (tensors) => [...new Set(Object.values(tensors).map((t) => t.data && t.data.buffer).filter(Boolean))];
parentPort.on("message", async (msg) => {
  try {
    if (msg.op === "create") {
      session = await ort.InferenceSession.create(msg.path, msg.options);
      parentPort.postMessage({ id: msg.id, ok: true, inputMetadata: session.inputMetadata, outputMetadata: session.outputMetadata });
    } else if (msg.op === "run") {
      const feeds = {};
      for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
      const out = await session.run(feeds);
      const outputs = {};
      for (const [name, t] of Object.entries(out)) outputs[name] = { type: t.type, data: t.data, dims: t.dims };
      parentPort.postMessage({ id: msg.id, ok: true, outputs }, buffers(outputs));
    } else if (msg.op === "step") {
      let past = states.get(msg.state);
      if (!past) {
        past = new Map();
        for (const kv of msg.cache) {
          const dims = [1, kv.heads, 0, kv.headDim];
          past.set(kv.input, kv.type === "float16" ? new ort.Tensor("float16", new Uint16Array(0), dims) : new ort.Tensor("float32", new Float32Array(0), dims));
        }
        states.set(msg.state, past);
      }
      const feeds = {};
      for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
      for (const [name, t] of past) feeds[name] = t;
      const out = await session.run(feeds);
      const logits = out[msg.logits];
      if (!logits) throw new Error("the graph returned no '" + msg.logits + "' output");
      const vocab = logits.dims[logits.dims.length - 1];
      const start = logits.data.length - vocab;
      const row = logits.type === "float16" ? toFloat32(logits.data.subarray(start, start + vocab)) : logits.data.slice(start, start + vocab);
      for (const kv of msg.cache) {
        const present = out[kv.output];
        if (!present) throw new Error("the graph returned no '" + kv.output + "' output");
        past.set(kv.input, present);
      }
      parentPort.postMessage({ id: msg.id, ok: true, row }, [row.buffer]);
    } else if (msg.op === "drop") {
      states.delete(msg.state);
    } else if (msg.op === "release") {
      if (session) await session.release();
      session = null;
      parentPort.postMessage({ id: msg.id, ok: true });
    }
  } catch (err) {
    parentPort.postMessage({ id: msg.id, ok: false, message: (err && err.message) || String(err) });
  }
});
`;

/**
 * An ONNX Runtime session in a worker thread. onnxruntime-node's `run` is synchronous on the calling thread, so a
 * session on the main thread stalls every other request (streams, /health, other models) for each decode step; a
 * large model's prompt can take seconds. Here the main thread only builds feeds and reads logits, and tensor data
 * moves between the threads without copies (its buffers are transferred).
 */
export class OnnxWorkerSession implements OnnxRunner {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;
  inputMetadata: InferenceSession["inputMetadata"] = [];
  outputMetadata: InferenceSession["outputMetadata"] = [];

  get inputNames(): readonly string[] {
    return this.inputMetadata.map((m) => m.name);
  }

  get outputNames(): readonly string[] {
    return this.outputMetadata.map((m) => m.name);
  }

  private constructor(
    private readonly ort: OrtModule,
    private readonly worker: Worker,
  ) {
    worker.on("message", (reply: Reply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      p?.resolve(reply);
    });
    const fail = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the ONNX Runtime worker thread exited (code ${code})`)));
    worker.unref(); // an idle session never keeps the process alive
  }

  static async create(path: string, options: InferenceSession.SessionOptions): Promise<OnnxWorkerSession> {
    const ort = await import("onnxruntime-node");
    const ortPath = createRequire(import.meta.url).resolve("onnxruntime-node");
    const session = new OnnxWorkerSession(ort, new Worker(WORKER_CODE, { eval: true, workerData: { ortPath } }));
    try {
      const reply = await session.call({ op: "create", path, options });
      session.inputMetadata = reply.inputMetadata ?? [];
      session.outputMetadata = reply.outputMetadata ?? [];
      return session;
    } catch (err) {
      await session.worker.terminate();
      throw err;
    }
  }

  private async call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Extract<Reply, { ok: true }>> {
    if (this.dead) throw this.dead;
    const id = this.next++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref(); // work in flight keeps the process alive until it answers
      this.worker.postMessage({ ...message, id }, transfer);
    }).finally(() => {
      if (this.pending.size === 0) this.worker.unref();
    });
    if (!reply.ok) throw new Error(reply.message);
    return reply;
  }

  /** The feeds' buffers move to the worker: the caller must not read them afterwards (the engine never does). */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const wire: Record<string, WireTensor> = {};
    const transfer = new Set<ArrayBuffer>();
    for (const [name, t] of Object.entries(feeds)) {
      wire[name] = { type: t.type, data: t.data, dims: t.dims };
      const buffer = (t.data as { buffer?: unknown }).buffer;
      if (buffer instanceof ArrayBuffer && buffer.byteLength > 0) transfer.add(buffer);
    }
    const reply = await this.call({ op: "run", feeds: wire }, [...transfer]);
    const out: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(reply.outputs ?? {})) out[name] = new this.ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
    return out;
  }

  async step(request: DecodeStep): Promise<Float32Array> {
    const feeds: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(request.feeds)) feeds[name] = { type: t.type, data: t.data, dims: t.dims };
    const reply = await this.call({ op: "step", state: request.state, feeds, cache: request.cache, logits: request.logits });
    return reply.row!;
  }

  /** Frees a generation's KV cache in the worker (no reply: nothing waits for it). */
  dropState(state: number): void {
    if (!this.dead) this.worker.postMessage({ op: "drop", id: -1, state });
  }

  async release(): Promise<void> {
    try {
      if (!this.dead) await this.call({ op: "release" });
    } finally {
      await this.worker.terminate();
    }
  }
}
