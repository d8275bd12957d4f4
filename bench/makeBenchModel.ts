// Usage: npx tsx bench/makeBenchModel.ts [out.gguf]
// Writes a ~105 MB model with the test-fixture generator (same vocabulary and ChatML template, 512-wide, 8 layers):
// about 150 tok/s on one thread here, 20x slower than the tiny fixture, to show how the daemon's fixed per-token
// cost weighs on a model whose tokens take milliseconds. Its end-of-turn bias keeps greedy output (default prompt) going past
// 1000 tokens, so `--max-tokens` runs complete.
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyChatModel } from "../test/fixtures/makeTinyChatModel.js";

const out = resolve(process.argv[2] ?? fileURLToPath(new URL("../.fixtures/bench/bench-medium.gguf", import.meta.url)));
// Not next to the test fixtures: tests and `npm run demo` serve every GGUF in .fixtures/models.
await mkdir(dirname(out), { recursive: true });
await writeTinyChatModel(out, { nEmbd: 512, nLayer: 8, nHead: 8, nFf: 1536, eogBias: -40 });
process.stdout.write(`${out}\n`);
