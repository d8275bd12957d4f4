// End to end: the GGUF header reader on a HubModelFileSystem reads a big file's header through a few ranged
// requests and never the tensor data.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readGgufHeader } from "../../../src/detection/gguf/readGgufHeader.js";
import { HubModelFileSystem } from "../../../src/detection/hub/HubModelFileSystem.js";
import { startFakeHub, type FakeHub } from "../../helpers/fakeHub.js";
import { GgmlType, GgufValueType, GgufWriter } from "../../fixtures/gguf/GgufWriter.js";

const TAIL = 64 << 20; // stands in for gigabytes of tensor data
const MiB = 1 << 20;

function ggufWithTail(writer: GgufWriter): Buffer {
  return Buffer.concat([writer.toBuffer(), Buffer.alloc(TAIL)]);
}

const small = ggufWithTail(
  new GgufWriter()
    .addString("general.architecture", "llama")
    .addString("general.name", "hub-tiny")
    .addUint32("llama.context_length", 4096)
    .addArray("tokenizer.ggml.tokens", GgufValueType.STRING, ["<s>", "</s>", "a", "b"])
    .addTensorRaw("token_embd.weight", [64, 4], GgmlType.F32, new Uint8Array(64 * 4 * 4)),
);

// A header larger than the reader's 1 MiB window: a 1.6 MB array it skips, then more metadata after it.
const LONG = 400_000;
const large = ggufWithTail(
  new GgufWriter()
    .addString("general.architecture", "llama")
    .addArray("tokenizer.ggml.token_type", GgufValueType.INT32, new Array<number>(LONG).fill(1))
    .addString("general.name", "after-the-long-array")
    .addTensorRaw("output.weight", [8], GgmlType.F32, new Uint8Array(32)),
);

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub({ "acme/gguf": { files: { "model.gguf": small, "sub/large-header.gguf": large } } });
});
afterAll(async () => {
  await hub.close();
});
beforeEach(() => hub.resetStats());

const ranged = (): string[] => hub.stats.requests.filter((r) => r.status === 206).map((r) => r.range ?? "");

describe("readGgufHeader over HubModelFileSystem", () => {
  it("parses the header of a file with a 64 MiB tail from one 1 MiB ranged read", async () => {
    const fs = new HubModelFileSystem({ repo: "acme/gguf", hubUrl: hub.url });
    const src = await fs.open("model.gguf");
    expect(src.size).toBe(small.length);
    hub.resetStats();
    const header = await readGgufHeader(src);
    expect(header.metadata.get("general.architecture")).toBe("llama");
    expect(header.metadata.get("llama.context_length")).toBe(4096);
    expect(header.tensors.map((t) => [t.name, t.dims])).toEqual([["token_embd.weight", [64, 4]]]);
    expect(ranged()).toEqual([`bytes=0-${MiB - 1}`]);
    expect(hub.stats.bytesServed).toBe(MiB);
  });

  it("reads a header larger than one window with a second ranged read, skipping the array between", async () => {
    const fs = new HubModelFileSystem({ repo: "acme/gguf", hubUrl: hub.url });
    const src = await fs.open("sub/large-header.gguf");
    hub.resetStats();
    const header = await readGgufHeader(src);
    expect(header.metadata.get("general.name")).toBe("after-the-long-array");
    expect(header.metadata.get("tokenizer.ggml.token_type")).toMatchObject({ length: LONG, items: null });
    expect(header.tensors.map((t) => t.name)).toEqual(["output.weight"]);
    const reads = ranged();
    expect(reads).toHaveLength(2);
    expect(reads[0]).toBe(`bytes=0-${MiB - 1}`);
    expect(hub.stats.bytesServed).toBe(2 * MiB);
    expect(hub.stats.bytesServed).toBeLessThan(large.length / 30);
  });
});
