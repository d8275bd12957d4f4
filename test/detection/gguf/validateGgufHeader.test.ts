import { describe, expect, it } from "vitest";
import { detectSource } from "../../../src/detection/detectSource.js";
import { detectGgufModel } from "../../../src/detection/gguf/detectGgufModel.js";
import { InvalidGgufError } from "../../../src/detection/gguf/readGgufHeader.js";
import { GgmlType, GgufValueType, GgufWriter } from "../../fixtures/gguf/GgufWriter.js";
import { makeTinyChatModel } from "../../fixtures/makeTinyChatModel.js";
import { makeTinyEmbeddingModel } from "../../fixtures/makeTinyEmbeddingModel.js";
import { buildTinyChatVocab } from "../../fixtures/tinyChatVocab.js";
import { MemoryModelFileSystem } from "../onnx/memoryFs.js";
import { ggufLayout, tokenBytes } from "./ggufLayout.js";

const chat = makeTinyChatModel();
const layout = ggufLayout(chat);
const vocab = buildTinyChatVocab();

async function detect(buf: Uint8Array) {
  const fs = new MemoryModelFileSystem({ "m.gguf": buf });
  const [main] = await fs.list();
  return detectGgufModel(fs, { main: main!, shards: [], projector: null });
}

/** The InvalidGgufError message detection ends in (fails the test when detection succeeds). */
async function invalid(buf: Uint8Array): Promise<string> {
  const err = await detect(buf).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "expected the file to be refused").toBeInstanceOf(InvalidGgufError);
  return (err as Error).message;
}

function edit(f: (b: Buffer) => void, from: Uint8Array = chat): Buffer {
  const b = Buffer.from(from);
  f(b);
  return b;
}

/** A small decoder GGUF with a vocabulary, for the tokenizers the chat fixture does not use. */
function withVocab(model: string, tokens: string[], extra: (w: GgufWriter) => void = () => {}): Buffer {
  const w = new GgufWriter()
    .addString("general.architecture", "llama")
    .addUint32("llama.context_length", 256)
    .addString("tokenizer.ggml.model", model)
    .addArray("tokenizer.ggml.tokens", GgufValueType.STRING, tokens)
    .addArray(
      "tokenizer.ggml.token_type",
      GgufValueType.INT32,
      tokens.map(() => 1),
    );
  extra(w);
  return w.addTensorF32("token_embd.weight", [4, tokens.length], new Float32Array(4 * tokens.length)).toBuffer();
}

describe("GGUF files llama.cpp would refuse or abort on are invalid", () => {
  it("the fixtures themselves pass", async () => {
    expect((await detect(chat)).format).toBe("gguf");
    expect((await detect(makeTinyEmbeddingModel())).format).toBe("gguf");
  });

  it("a zeroed byte in the <0x0A> token (std::out_of_range in byte_to_token, the process aborts)", async () => {
    const newline = vocab.tokens.indexOf("<0x0A>");
    const [at, len] = tokenBytes(layout, newline);
    expect(len).toBe(6);
    for (const k of [0, 3, 5]) {
      expect(await invalid(edit((b) => (b[at + k] = 0)))).toMatch(/no <0x0A> \(newline\) byte token/);
    }
  });

  it("the same file through detectSource is not servable, and says why", async () => {
    const [at] = tokenBytes(layout, vocab.tokens.indexOf("<0x0A>"));
    const broken = edit((b) => (b[at + 4] = 0x42));
    const fs = new MemoryModelFileSystem({ "tiny-chat.gguf": broken });
    await expect(detectSource("acme/tiny", { openRemote: async () => ({ fs, file: "tiny-chat.gguf" }) })).rejects.toThrow(/newline/);
    // In a folder it is listed, not served, and its sibling still is.
    const folder = new MemoryModelFileSystem({ "broken.gguf": broken, "good.gguf": chat });
    const ds = await detectSource("acme/two", { openRemote: async () => ({ fs: folder, file: null }) });
    expect(ds.map((d) => [d.source.split("/").pop(), d.engine?.name ?? null])).toEqual([
      ["broken.gguf", null],
      ["good.gguf", "node-llama-cpp"],
    ]);
    expect(ds[0]!.reason).toMatch(/invalid GGUF: .*newline/);
  });

  it("a token string that is not UTF-8, and two tokens llama.cpp sees as one (a NUL ends a token there)", async () => {
    const [at] = tokenBytes(layout, vocab.tokens.indexOf("▁hello"));
    expect(await invalid(edit((b) => (b[at + 3] = 0xff)))).toMatch(/token \d+ is not valid UTF-8/);
    // "▁hell" + NUL reads as "▁hell", which exists: GGML_ASSERT(id_to_token.size() == token_to_id.size()).
    expect(await invalid(edit((b) => (b[at + 3 + 4] = 0)))).toMatch(/tokens \d+ and \d+ are both "▁hell"/);
  });

  it("token_type and scores shorter than the vocabulary, special ids past it, an empty vocabulary", async () => {
    const n = vocab.tokens.length;
    const types = layout.kvs.get("tokenizer.ggml.token_type")!;
    // Shorter array: the count says n - 1, and the last item's bytes become part of the next key (re-laid out here).
    const short = new GgufWriter()
      .addString("general.architecture", "llama")
      .addString("tokenizer.ggml.model", "llama")
      .addArray("tokenizer.ggml.tokens", GgufValueType.STRING, vocab.tokens)
      .addArray("tokenizer.ggml.token_type", GgufValueType.INT32, vocab.types.slice(1))
      .addArray("tokenizer.ggml.scores", GgufValueType.FLOAT32, vocab.scores.slice(2))
      .addTensorF32("w", [4], new Float32Array(4))
      .toBuffer();
    const message = await invalid(short);
    expect(message).toMatch(new RegExp(`tokenizer.ggml.scores has ${n - 2} entries for ${n} tokens`));
    expect(message).toMatch(new RegExp(`tokenizer.ggml.token_type has ${n - 1} entries for ${n} tokens`));
    expect(types.type).toBe(GgufValueType.ARRAY);

    const bos = layout.kvs.get("tokenizer.ggml.bos_token_id")!;
    expect(await invalid(edit((b) => b.writeUInt32LE(n, bos.valueOffset)))).toMatch(new RegExp(`bos_token_id = ${n} is outside the ${n}-token vocabulary`));
    const eos = layout.kvs.get("tokenizer.ggml.eos_token_id")!;
    expect(await invalid(edit((b) => b.writeUInt32LE(0xffffffff, eos.valueOffset)))).toMatch(/eos_token_id = 4294967295 is outside/);

    expect(await invalid(withVocab("llama", []))).toMatch(/vocabulary \(tokenizer.ggml.tokens\) is empty/);
  });

  it("BPE needs Ċ (newline) and merges; RWKV a newline token; unknown tokenizers are refused", async () => {
    const bpe = ["a", "b", "Ġ", "Ċ"];
    const merges = (w: GgufWriter) => w.addArray("tokenizer.ggml.merges", GgufValueType.STRING, ["a b"]);
    expect((await detect(withVocab("gpt2", bpe, merges))).format).toBe("gguf");
    expect(await invalid(withVocab("gpt2", ["a", "b", "Ġ", "\n"], merges))).toMatch(/no "Ċ" \(newline\) token/);
    expect(await invalid(withVocab("gpt2", bpe))).toMatch(/needs tokenizer.ggml.merges/);
    expect((await detect(withVocab("rwkv", ["a", "\\n"]))).format).toBe("gguf");
    expect(await invalid(withVocab("rwkv", ["a", "b"]))).toMatch(/RWKV vocabulary has no newline/);
    expect(await invalid(withVocab("sentencepiece-ish", ["a"]))).toMatch(/not a tokenizer llama.cpp knows/);
    // WordPiece has no newline lookup.
    expect((await detect(withVocab("bert", ["[PAD]", "a"]))).format).toBe("gguf");
  });

  it("warns about missing SentencePiece byte tokens short of the newline one", async () => {
    const tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "▁a"];
    const d = await detect(withVocab("llama", tokens));
    expect(d.warnings[0]).toMatch(/^255 byte tokens are missing \(<0x00>, <0x01>, <0x02>, <0x03>, \.\.\.\)/);
  });

  it("alignment 0 or not a power of two, or not a uint32", async () => {
    const w = () => new GgufWriter().addString("general.architecture", "llama").addTensorF32("w", [8], new Float32Array(8));
    expect(await invalid(w().addUint32("general.alignment", 0).toBuffer())).toMatch(/general.alignment 0 is not a power of two/);
    expect(await invalid(w().addUint32("general.alignment", 3).toBuffer())).toMatch(/general.alignment 3 is not a power of two/);
    expect(await invalid(w().addUint64("general.alignment", 32n).toBuffer())).toMatch(/general.alignment must be a uint32/);
  });

  it("no tensors, absurd context lengths", async () => {
    expect(await invalid(new GgufWriter().addString("general.architecture", "llama").toBuffer())).toMatch(/no tensors/);
    const ctx = layout.kvs.get("llama.context_length")!;
    expect(await invalid(edit((b) => b.writeUInt32LE(0xffffffff, ctx.valueOffset)))).toMatch(/llama.context_length = 4294967295 is implausible/);
    expect(await invalid(edit((b) => b.writeUInt32LE(0, ctx.valueOffset)))).toMatch(/context_length = 0 is implausible/);
    const u64 = new GgufWriter()
      .addString("general.architecture", "llama")
      .addUint64("llama.context_length", 2n ** 64n - 1n)
      .addTensorF32("w", [8], new Float32Array(8))
      .toBuffer();
    expect(await invalid(u64)).toMatch(/llama.context_length is not a uint32/);
  });

  it("tensor data out of the file, tensors not back to back, shapes that do not fit the type's blocks", async () => {
    const last = layout.tensors.at(-1)!;
    expect(await invalid(chat.subarray(0, chat.length - 64))).toMatch(/tensor .* runs past the end of the \d+-byte file/);
    expect(await invalid(edit((b) => b.writeBigUInt64LE(2n ** 40n, last.offsetOffset)))).toMatch(/past the end/);
    const second = layout.tensors[1]!;
    expect(await invalid(edit((b) => b.writeBigUInt64LE(b.readBigUInt64LE(second.offsetOffset) + 32n, second.offsetOffset)))).toMatch(
      new RegExp(`tensor ${second.name.replace(/\./g, "\\.")} is at data offset \\d+, but the tensors before it end at`),
    );
    expect(await invalid(edit((b) => b.writeBigUInt64LE(b.readBigUInt64LE(last.dimOffsets[0]) * 2n, last.dimOffsets[0])))).toMatch(/runs past the end/);
    const q8 = new GgufWriter().addString("general.architecture", "llama").addTensorRaw("w", [16, 2], GgmlType.Q8_0, new Uint8Array(68)).toBuffer();
    expect(await invalid(q8)).toMatch(/rows of 16 elements are not a multiple of the Q8_0 block of 32/);
    expect(await invalid(edit((b) => b.writeUInt32LE(5, last.nDimsOffset)))).toMatch(/5 dimensions/);
  });

  it("streams a 150k-token vocabulary quickly", async () => {
    const tokens = Array.from({ length: 150_000 }, (_, i) => (i === 10 ? "Ċ" : `tok_${i.toString(36)}_ü`));
    const big = withVocab("gpt2", tokens, (w) =>
      w.addArray(
        "tokenizer.ggml.merges",
        GgufValueType.STRING,
        Array.from({ length: 100_000 }, (_, i) => `t ${i}`),
      ),
    );
    const t0 = performance.now();
    expect((await detect(big)).format).toBe("gguf");
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});
