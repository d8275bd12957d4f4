import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { InvalidSafetensorsError, readSafetensorsHeader, type SafetensorsHeader } from "../../../src/detection/safetensors/readSafetensorsHeader.js";
import { memoryByteSource } from "./memoryByteSource.js";
import { buildSafetensors, encodeSafetensors, type TensorSpec } from "./writeSafetensors.js";

/** mulberry32: small, fast, and the same sequence on every run (no Math.random). */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!, chance: (p: number): boolean => next() < p };
}
type Rng = ReturnType<typeof rng>;

const SEED = 0x5afe7e45;
const CASES = 12_000;

const BASES: Uint8Array[] = [
  buildSafetensors(
    [
      { name: "model.embed_tokens.weight", dtype: "BF16", shape: [16, 8] },
      { name: "model.layers.0.self_attn.q_proj.weight", dtype: "BF16", shape: [8, 8] },
      { name: "model.norm.weight", dtype: "F32", shape: [8] },
    ],
    { format: "pt" },
  ),
  buildSafetensors([{ name: "w", dtype: "F32", shape: [4, 4] }]),
  buildSafetensors([]),
  buildSafetensors([
    { name: "scalar", dtype: "I64", shape: [] },
    { name: "zero", dtype: "F16", shape: [0, 3] },
    { name: "q4", dtype: "F4", shape: [8] },
    { name: "f8", dtype: "F8_E4M3", shape: [3, 5] },
    { name: "flags", dtype: "BOOL", shape: [7] },
    { name: "ids", dtype: "U64", shape: [2, 1, 2] },
  ]),
  buildSafetensors(
    Array.from({ length: 60 }, (_, i): TensorSpec => ({ name: `layers.${i}.weight`, dtype: i % 3 ? "F16" : "F32", shape: [i % 5, 3] })),
    { format: "pt", producer: "fuzz" },
  ),
];

const NASTY_NUMBERS = [
  "1e400",
  "-1e400",
  "-1",
  "-0",
  "0",
  "1.5",
  "0.1",
  "1e21",
  "9007199254740992",
  "9007199254740993",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999999",
  "2147483648",
  "4294967296",
  "NaN",
  "1",
];
const NASTY_PREFIXES = [0n, 1n, 7n, 8n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n];

function headerLength(bytes: Uint8Array): number {
  if (bytes.length < 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

function headerText(base: Uint8Array): string {
  return new TextDecoder().decode(base.subarray(8, 8 + headerLength(base)));
}

/** A position biased toward the length prefix and the JSON, where the reader actually looks. */
function position(r: Rng, bytes: Uint8Array): number {
  const headerEnd = Math.min(bytes.length, 8 + headerLength(bytes));
  return r.chance(0.85) && headerEnd > 0 ? r.int(headerEnd) : r.int(Math.max(1, bytes.length));
}

function randomBytes(r: Rng, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => r.int(256));
}

function randomJson(r: Rng, depth: number): unknown {
  switch (depth > 3 ? r.int(4) : r.int(7)) {
    case 0:
      return r.pick([null, true, false]);
    case 1:
      return r.pick([0, -1, 1.5, 2 ** 60, -(2 ** 60), 1e308, 4]);
    case 2:
      return r.pick(["F32", "BF16", "", "F999", "__metadata__", "\u0000", "\ud800"]);
    case 3:
      return [];
    case 4:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
    case 5:
      return Object.fromEntries(Array.from({ length: r.int(3) }, (_, i) => [r.pick(["dtype", "shape", "data_offsets", `k${i}`]), randomJson(r, depth + 1)]));
    default:
      return { dtype: r.pick(["F32", "U8", "X"]), shape: [r.int(5)], data_offsets: [r.int(10), r.int(40)] };
  }
}

function deepNesting(r: Rng): string {
  const depth = 1 + r.int(60_000);
  const [open, close] = r.pick([
    ["[", "]"],
    ['{"a":', "}"],
  ] as const);
  const balanced = r.chance(0.7);
  const inner = `${open.repeat(depth)}${r.pick(["", "1", '"x"'])}${close.repeat(balanced ? depth : r.int(depth))}`;
  return r.pick([
    `{"a":${inner}}`,
    `{"__metadata__":{"k":${inner}}}`,
    `{"w":{"dtype":"F32","shape":${inner},"data_offsets":[0,4]}}`,
    `{"w":{"dtype":"F32","shape":[1],"data_offsets":${inner}}}`,
    inner,
  ]);
}

type Mutation = { kind: string; bytes: Uint8Array };

/** Mutations that work on any bytes; the others need a valid base file. */
const BYTE_LEVEL = ["flip", "set", "insert", "delete", "prefix", "truncate"] as const;
const ALL = [...BYTE_LEVEL, "number", "structure", "nesting", "utf8", "garbage", "stacked", "dataLength"] as const;

function mutate(r: Rng, base: Uint8Array, kinds: readonly (typeof ALL)[number][] = ALL): Mutation {
  const b = base.slice();
  const kind = r.pick(kinds);
  switch (kind) {
    case "flip": {
      if (b.length === 0) return { kind, bytes: b };
      for (let i = 1 + r.int(8); i > 0; i--) {
        const p = position(r, b);
        if (p < b.length) b[p]! ^= 1 << r.int(8);
      }
      return { kind, bytes: b };
    }
    case "set": {
      for (let i = 1 + r.int(4); i > 0; i--) {
        const p = position(r, b);
        if (p < b.length) b[p] = r.pick([0x00, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x2d, 0x30, 0x39, 0xff, r.int(256)]);
      }
      return { kind, bytes: b };
    }
    case "insert": {
      const p = position(r, b);
      const extra = randomBytes(r, 1 + r.int(16));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b.subarray(0, p));
      out.set(extra, p);
      out.set(b.subarray(p), p + extra.length);
      return { kind, bytes: out };
    }
    case "delete": {
      const p = position(r, b);
      const head = b.subarray(0, p);
      const tail = b.subarray(Math.min(b.length, p + 1 + r.int(16)));
      const out = new Uint8Array(head.length + tail.length);
      out.set(head);
      out.set(tail, head.length);
      return { kind, bytes: out };
    }
    case "prefix": {
      if (b.length < 8) return { kind, bytes: b };
      const n = headerLength(b);
      const options = [...NASTY_PREFIXES, BigInt(n - 1), BigInt(n + 1), BigInt(b.length - 8), BigInt(b.length - 7), BigInt(r.int(b.length + 16))];
      const value = r.chance(0.2) ? new DataView(randomBytes(r, 8).buffer).getBigUint64(0, true) : r.pick(options);
      new DataView(b.buffer).setBigUint64(0, value < 0n ? 0n : value, true);
      return { kind, bytes: b };
    }
    case "truncate":
      return { kind, bytes: b.subarray(0, r.int(b.length + 1)) };
    case "number": {
      // Swap one number of the JSON for a nasty one, then re-encode with a consistent length prefix.
      const text = headerText(base);
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      const m = numbers.length > 0 ? r.pick(numbers) : null;
      const replaced = m ? text.slice(0, m.index) + r.pick(NASTY_NUMBERS) + text.slice(m.index + m[0].length) : text;
      return { kind, bytes: encodeSafetensors(replaced.trimEnd(), base.length - 8 - headerLength(base)) };
    }
    case "structure": {
      const header = JSON.parse(headerText(base)) as Record<string, Record<string, unknown>>;
      const names = Object.keys(header);
      const target = names.length > 0 && r.chance(0.8) ? r.pick(names) : `new${r.int(3)}`;
      const entry = header[target];
      if (entry && typeof entry === "object" && r.chance(0.7)) entry[r.pick(["dtype", "shape", "data_offsets", "extra"])] = randomJson(r, 0);
      else header[target] = randomJson(r, 0) as Record<string, unknown>;
      return { kind, bytes: encodeSafetensors(JSON.stringify(header), base.length - 8 - headerLength(base)) };
    }
    case "nesting":
      return { kind, bytes: encodeSafetensors(deepNesting(r), r.int(8)) };
    case "utf8": {
      const text = new TextEncoder().encode(headerText(base));
      const p = 1 + r.int(Math.max(1, text.length - 1));
      const bad = r.pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]);
      const out = new Uint8Array(text.length + bad.length);
      out.set(text.subarray(0, p));
      out.set(bad, p);
      out.set(text.subarray(p), p + bad.length);
      return { kind, bytes: encodeSafetensors(out, base.length - 8 - headerLength(base), { pad: false }) };
    }
    case "garbage": {
      const g = randomBytes(r, r.int(96));
      if (g.length >= 8 && r.chance(0.5)) new DataView(g.buffer).setBigUint64(0, BigInt(r.int(g.length)), true);
      return { kind, bytes: g };
    }
    case "stacked": {
      let bytes: Uint8Array = b;
      for (let i = 2 + r.int(3); i > 0; i--) bytes = mutate(r, bytes, BYTE_LEVEL).bytes;
      return { kind, bytes };
    }
    case "dataLength": {
      // Header intact, data section shorter or longer than the tensors claim.
      const n = headerLength(base);
      const delta = r.pick([-64, -8, -1, 1, 8, 4096]);
      return { kind, bytes: encodeSafetensors(base.subarray(8, 8 + n), Math.max(0, base.length - 8 - n + delta), { pad: false }) };
    }
  }
}

/** What a successful result must satisfy whatever the input. */
function checkInvariants(h: SafetensorsHeader, size: number): string | null {
  let cursor = 0;
  let params = 0;
  for (const t of h.tensors) {
    if (t.dataOffsets[0] !== cursor || t.byteLength !== t.dataOffsets[1] - t.dataOffsets[0]) return `tensor ${t.name} not contiguous`;
    if (t.fileOffset !== h.dataStart + t.dataOffsets[0] || t.fileOffset + t.byteLength > size) return `tensor ${t.name} outside the file`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor ${t.name} has a bad shape`;
    cursor = t.dataOffsets[1];
    params += t.elements;
  }
  if (h.dataStart + cursor !== size) return "tensors do not end at the end of the file";
  if (params !== h.parameterCount || !Number.isSafeInteger(params)) return "parameter count mismatch";
  if (!Object.values(h.metadata).every((v) => typeof v === "string")) return "non-string metadata";
  return null;
}

describe("readSafetensorsHeader fuzz", () => {
  it(`ends every one of ${CASES} mutated files in a result or an InvalidSafetensorsError, quickly and within the file`, async () => {
    const r = rng(SEED);
    const failures: string[] = [];
    const outcomes = { valid: 0, invalid: 0 };
    const kinds = new Map<string, number>();
    let slowest = 0;
    const start = performance.now();
    for (let i = 0; i < CASES; i++) {
      const { kind, bytes } = mutate(r, r.pick(BASES));
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      const src = memoryByteSource(bytes);
      const t0 = performance.now();
      try {
        const h = await readSafetensorsHeader(src);
        outcomes.valid++;
        const broken = checkInvariants(h, bytes.length);
        if (broken) failures.push(`case ${i} (${kind}): ${broken}`);
      } catch (err) {
        outcomes.invalid++;
        if (!(err instanceof InvalidSafetensorsError)) failures.push(`case ${i} (${kind}): ${String(err)}`);
      }
      const elapsed = performance.now() - t0;
      slowest = Math.max(slowest, elapsed);
      if (elapsed > 200) failures.push(`case ${i} (${kind}) took ${elapsed.toFixed(0)} ms`);
      // Two reads at most (length, then JSON), none larger than the file: memoryByteSource throws otherwise.
      if (src.reads.length > 2) failures.push(`case ${i} (${kind}): ${src.reads.length} reads`);
      if (failures.length > 20) break;
    }
    const total = performance.now() - start;
    console.info(
      `safetensors fuzz: ${CASES} cases in ${total.toFixed(0)} ms (slowest ${slowest.toFixed(1)} ms), ` +
        `${outcomes.valid} valid, ${outcomes.invalid} invalid; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}`,
    );
    expect(failures).toEqual([]);
    expect(total).toBeLessThan(20_000);
    expect(outcomes.valid + outcomes.invalid).toBe(CASES);
    // Both outcomes occur: the mutations neither all miss nor all break the reader's happy path.
    expect(outcomes.valid).toBeGreaterThan(100);
    expect(outcomes.invalid).toBeGreaterThan(CASES / 2);
  });
});
