// Usage: npx tsx scripts/make-fixtures.ts [outDir]
// Generates the tiny GGUF test models (no downloads) and prints their paths, one per line:
// the chat model first, then the embedding model.
import { resolve } from "node:path";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";

const outDir = process.argv[2];
const paths = await ensureFixtures(outDir === undefined ? undefined : resolve(outDir));
process.stdout.write(`${paths.chatModelPath}\n${paths.embeddingModelPath}\n`);
