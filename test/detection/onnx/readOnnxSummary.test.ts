import { describe, expect, it } from "vitest";
import { InvalidOnnxError, readOnnxSummary } from "../../../src/detection/onnx/readOnnxSummary.js";
import { memorySource, rng, type ReadStats } from "./memoryFs.js";
import { bytesField, concat, decoderSpec, encoderSpec, intField, messageField, stringField, tag, valueInfo, varint, writeOnnx, DataType } from "./writeOnnx.js";

function stats(): ReadStats {
  return { reads: 0, bytesRead: 0, perFile: new Map() };
}

async function expectInvalid(bytes: Uint8Array, code?: string, options = {}): Promise<InvalidOnnxError> {
  const err = await readOnnxSummary(memorySource(bytes), options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidOnnxError);
  if (code) expect((err as InvalidOnnxError).code).toBe(code);
  return err as InvalidOnnxError;
}

describe("readOnnxSummary", () => {
  it("reads versions, opsets, inputs/outputs with shapes, operators and initializers", async () => {
    const bytes = writeOnnx(
      decoderSpec(2, {
        irVersion: 9,
        producer: "pytorch",
        producerVersion: "2.4.0",
        opsets: [{ version: 17 }, { domain: "com.microsoft", version: 1 }],
        metadata: { "transformers.js_config": "{}" },
        nodes: [{ op: "MatMul" }, { op: "MatMul" }, { op: "MatMulNBits", domain: "com.microsoft" }],
        initializers: [
          { name: "a", dims: [4, 8], rawBytes: 128 },
          { name: "b", dims: [16], dataType: DataType.FLOAT16, rawBytes: 32 },
        ],
      }),
    );
    const s = await readOnnxSummary(memorySource(bytes));
    expect(s.irVersion).toBe(9);
    expect(s.producerName).toBe("pytorch");
    expect(s.producerVersion).toBe("2.4.0");
    expect(s.opsets).toEqual([
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ]);
    expect(s.metadata).toEqual({ "transformers.js_config": "{}" });
    expect(s.graphName).toBe("main_graph");
    expect(s.inputs[0]).toEqual({ name: "input_ids", kind: "tensor", elemType: "int64", shape: ["batch_size", "sequence_length"] });
    expect(s.inputs.map((i) => i.name)).toContain("past_key_values.1.value");
    expect(s.inputs.find((i) => i.name === "past_key_values.0.key")?.shape).toEqual(["batch_size", 4, "past_sequence_length", 16]);
    expect(s.outputs[0]).toEqual({ name: "logits", kind: "tensor", elemType: "float32", shape: ["batch_size", "sequence_length", 32000] });
    expect(s.nodeCount).toBe(3);
    expect(s.opTypes).toEqual({ MatMul: 2, "com.microsoft::MatMulNBits": 1 });
    expect(s.initializerCount).toBe(2);
    expect(s.initializerElements).toBe(48);
    expect(s.initializerTypes).toEqual({ float32: 32, float16: 16 });
    expect(s.inlineDataBytes).toBe(160);
    expect(s.externalData).toEqual([]);
  });

  it("skips a 5 MB initializer by offset and still finds the inputs after it", async () => {
    const bytes = writeOnnx(encoderSpec({ initializers: [{ name: "big", dims: [1310720], rawBytes: 5 << 20 }] }));
    expect(bytes.length).toBeGreaterThan(5 << 20);
    const st = stats();
    const s = await readOnnxSummary(memorySource(bytes, st));
    expect(s.outputs.map((o) => o.name)).toEqual(["last_hidden_state"]);
    expect(s.inputs.map((i) => i.name)).toEqual(["input_ids", "attention_mask"]);
    expect(s.inlineDataBytes).toBe(5 << 20);
    expect(s.initializerElements).toBe(1310720);
    expect(st.bytesRead).toBeLessThan(16 << 10);
    expect(st.reads).toBeLessThanOrEqual(3);
    expect(s.bytesRead).toBe(st.bytesRead);
  });

  it("walks a 1.9 GB graph (sparse) reading a few KB: header, each initializer's head, then the tail", async () => {
    // Build the real bytes around three ~630 MB initializers, then serve everything but the headers as zeros.
    const huge = 630_000_000;
    const tensorHead = (name: string) => concat([bytesField(1, varint(huge / 4)), intField(2, 1), stringField(8, name), tag(9, 2), varint(huge)]);
    const heads = ["w0", "w1", "w2"].map(tensorHead);
    const tail = concat([valueInfo(11, { name: "input_ids", elemType: DataType.INT64, shape: ["b", "s"] }), valueInfo(12, { name: "logits", shape: ["b", 2] })]);
    const graphLen = heads.reduce((n, h) => n + tag(5, 2).length + varint(h.length + huge).length + h.length + huge, 0) + tail.length;
    const prefix = concat([intField(1, 8), stringField(2, "pytorch"), tag(7, 2), varint(graphLen)]);
    const parts: { offset: number; bytes: Uint8Array }[] = [{ offset: 0, bytes: prefix }];
    let at = prefix.length;
    for (const h of heads) {
      const open = concat([tag(5, 2), varint(h.length + huge), h]);
      parts.push({ offset: at, bytes: open });
      at += open.length + huge;
    }
    parts.push({ offset: at, bytes: tail });
    const size = at + tail.length;
    const st = stats();
    const t0 = performance.now();
    const s = await readOnnxSummary(memorySource({ size, parts }, st));
    const ms = performance.now() - t0;
    expect(size).toBeGreaterThan(1.8e9);
    expect(s.initializerCount).toBe(3);
    expect(s.inlineDataBytes).toBe(3 * huge);
    expect(s.outputs[0]?.shape).toEqual(["b", 2]);
    expect(st.bytesRead).toBeLessThan(32 << 10);
    expect(ms).toBeLessThan(500);
  });

  it("reports external data per location with offsets and lengths", async () => {
    const bytes = writeOnnx(
      encoderSpec({
        initializers: [
          { name: "a", dims: [1024], external: { location: "model.onnx_data", offset: 0, length: 4096 } },
          { name: "b", dims: [1024], external: { location: "model.onnx_data", offset: 4096, length: 4096 } },
          { name: "c", dims: [2], external: { location: "../../etc/passwd" } },
        ],
      }),
    );
    const s = await readOnnxSummary(memorySource(bytes));
    expect(s.externalData).toEqual([
      { location: "model.onnx_data", tensors: 2, bytes: 8192 },
      { location: "../../etc/passwd", tensors: 1, bytes: null },
    ]);
    expect(s.initializerElements).toBe(2050);
    expect(s.inlineDataBytes).toBe(0);
  });

  it("drops graph inputs that are initializers (IR < 4 lists weights as inputs)", async () => {
    const bytes = writeOnnx(encoderSpec({ irVersion: 3, inputs: [{ name: "input_ids" }, { name: "embeddings.word_embeddings.weight" }] }));
    const s = await readOnnxSummary(memorySource(bytes));
    expect(s.inputs.map((i) => i.name)).toEqual(["input_ids"]);
  });

  it("reads negative dims, unknown fields and non-tensor types", async () => {
    const seqOfSeq = messageField(11, [
      stringField(1, "nested"),
      messageField(2, [messageField(4, [messageField(1, [messageField(4, [messageField(1, [messageField(1, [intField(1, 10)])])])])])]),
    ]);
    const graph = concat([
      stringField(2, "g"),
      intField(99, 5), // unknown varint field
      concat([tag(98, 5), new Uint8Array(4)]), // unknown fixed32
      concat([tag(97, 1), new Uint8Array(8)]), // unknown fixed64
      valueInfo(11, { name: "x", shape: [-1, 3, null] }),
      seqOfSeq,
    ]);
    const model = concat([intField(1, 7), messageField(7, [graph]), stringField(50, "ignored")]);
    const s = await readOnnxSummary(memorySource(model));
    expect(s.inputs[0]?.shape).toEqual([-1, 3, null]);
    expect(s.inputs[1]).toEqual({ name: "nested", kind: "sequence", elemType: "float16", shape: null });
  });

  it("stops when aborted", async () => {
    const err = await readOnnxSummary(memorySource(writeOnnx(encoderSpec())), { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
  });

  describe("errors", () => {
    const valid = writeOnnx(decoderSpec(1));

    it("every truncation of a valid model is a typed error", async () => {
      for (let n = 0; n < valid.length; n++) {
        const err = await readOnnxSummary(memorySource(valid.subarray(0, n))).then(
          () => null,
          (e: unknown) => e,
        );
        // A cut that lands exactly between top-level fields leaves a shorter but valid model.
        if (err !== null) expect(err, `cut at ${n}`).toBeInstanceOf(InvalidOnnxError);
      }
      await expectInvalid(valid.subarray(0, valid.length - 3), "truncated"); // a tag with no length after it
      await expectInvalid(valid.subarray(0, 40), "bad-length"); // the graph claims more bytes than remain
    });

    it("refuses garbage, an empty file and protobuf without a graph", async () => {
      await expectInvalid(new TextEncoder().encode("this is a README, not a model\n"));
      await expectInvalid(new Uint8Array(0), "not-onnx");
      await expectInvalid(writeOnnx({ noGraph: true }), "not-onnx");
      await expectInvalid(concat([messageField(7, [stringField(2, "g")])]), "not-onnx"); // no ir_version
    });

    it("refuses varints longer than 10 bytes and lengths past the end", async () => {
      await expectInvalid(concat([tag(1, 0), new Uint8Array(11).fill(0xff), Uint8Array.of(1)]), "bad-varint");
      await expectInvalid(concat([intField(1, 8), tag(7, 2), varint(1000), stringField(2, "g")]), "bad-length");
      // A sub-message whose field claims more than its parent holds.
      await expectInvalid(concat([intField(1, 8), messageField(7, [tag(2, 2), varint(50), new Uint8Array(3)])]), "bad-length");
    });

    it("refuses group wire types, field 0 and known fields with the wrong wire type", async () => {
      await expectInvalid(concat([intField(1, 8), tag(7, 3)]), "bad-tag");
      await expectInvalid(Uint8Array.of(0x00, 0x01), "bad-tag");
      await expectInvalid(concat([stringField(1, "8")]), "bad-tag");
    });

    it("refuses nesting past the depth limit", async () => {
      let type = messageField(1, [intField(1, 1)]); // tensor_type
      for (let i = 0; i < 12; i++) type = messageField(4, [messageField(1, [type])]); // sequence of ...
      const model = concat([intField(1, 8), messageField(7, [messageField(11, [stringField(1, "x"), bytesField(2, type)])])]);
      await expectInvalid(model, "too-deep");
      const shallow = await readOnnxSummary(memorySource(model), { maxDepth: 64 });
      expect(shallow.inputs[0]?.kind).toBe("sequence");
    });

    it("stops at the byte and field caps", async () => {
      const big = writeOnnx(encoderSpec({ nodes: Array.from({ length: 5000 }, () => ({ op: "Add", inputs: ["a", "b"], outputs: ["c"] })) }));
      await expectInvalid(big, "limit", { maxReadBytes: 16 << 10 });
      await expectInvalid(big, "limit", { maxFields: 1000 });
      const ok = await readOnnxSummary(memorySource(big));
      expect(ok.nodeCount).toBe(5000);
      expect(ok.opTypes).toEqual({ Add: 5000 });
    });

    it("mutated models end in a summary or a typed error (seeded, 3000 cases)", async () => {
      const base = writeOnnx(decoderSpec(2, { initializers: [{ name: "w", dims: [4], external: { location: "x.data", length: 16 } }] }));
      const rand = rng(1234);
      let errors = 0;
      const t0 = performance.now();
      for (let i = 0; i < 3000; i++) {
        const b = Uint8Array.from(base);
        const flips = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        const r = await readOnnxSummary(memorySource(b)).then(
          () => null,
          (e: unknown) => e,
        );
        if (r !== null) {
          expect(r).toBeInstanceOf(InvalidOnnxError);
          errors++;
        }
      }
      expect(errors).toBeGreaterThan(100);
      expect(performance.now() - t0).toBeLessThan(3000);
    });
  });
});
