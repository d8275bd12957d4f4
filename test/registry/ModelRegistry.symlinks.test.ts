import { copyFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/loadConfig.js";
import { detectSource } from "../../src/detection/detectSource.js";
import { buildModelRegistry } from "../../src/registry/ModelRegistry.js";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";

let base: string;
let models: string;
let outside: string;
let fx: FixturePaths;
const REV = "0123456789abcdef0123456789abcdef01234567";
const SHA = "a".repeat(64);

function capture() {
  const lines: { msg: string; path?: string; target?: string | null }[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

beforeAll(async () => {
  fx = await ensureFixtures();
  base = await mkdtemp(join(tmpdir(), "registry-links-"));
  models = join(base, "models");
  outside = join(base, "elsewhere");
  await mkdir(join(models, ".store", "embed"), { recursive: true });
  await mkdir(outside);
  await copyFile(fx.chatModelPath, join(models, ".store", "tiny-chat.gguf"));
  await copyFile(fx.embeddingModelPath, join(models, ".store", "embed", "tiny-embed.gguf"));
  await copyFile(fx.chatModelPath, join(outside, "secret.gguf"));
  // Links at the top of the models folder: to a file and a folder inside it, dangling, and out of it.
  await symlink(join(".store", "tiny-chat.gguf"), join(models, "chat.gguf"));
  await symlink(join(".store", "embed"), join(models, "embeddings"));
  await symlink(join(".store", "gone.gguf"), join(models, "dangling.gguf"));
  await symlink(join(outside, "secret.gguf"), join(models, "escape.gguf"));
  await symlink(models, join(models, "loop"));
  // A model folder made of links: into the models folder (followed) and out of it (warned).
  await mkdir(join(models, "linked-folder"));
  await symlink(join("..", ".store", "tiny-chat.gguf"), join(models, "linked-folder", "weights.gguf"));
  await symlink(join(outside, "secret.gguf"), join(models, "linked-folder", "other.gguf"));
  await symlink(join("..", "linked-folder"), join(models, "linked-folder", "self"));

  // A Hugging Face cache snapshot: snapshots/<rev>/file -> ../../blobs/<sha>.
  const repo = join(base, "hub", "models--acme--tiny-GGUF");
  await mkdir(join(repo, "blobs"), { recursive: true });
  await mkdir(join(repo, "snapshots", REV), { recursive: true });
  await copyFile(fx.chatModelPath, join(repo, "blobs", SHA));
  await symlink(join("..", "..", "blobs", SHA), join(repo, "snapshots", REV, "tiny-q8.gguf"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("symlinks in a models folder", () => {
  it("follows links that stay inside the models folder, and warns, naming them, about the others", async () => {
    const { logger, lines } = capture();
    const r = await buildModelRegistry(loadConfig({ base: { modelsDirs: [models] } }), logger);
    expect(r.list().map((m) => m.id)).toEqual(["chat", "tiny-embed", "weights"]);
    expect(r.get("chat")!.path).toBe(join(models, "chat.gguf"));
    expect(r.get("weights")!.path).toBe(join(models, "linked-folder", "weights.gguf"));
    const warned = lines.map((l) => l.msg);
    expect(warned).toContain("skipping symlink dangling.gguf: its target does not exist");
    expect(warned).toContain("skipping symlink escape.gguf: it points outside the models folder");
    expect(warned).toContain("skipping symlink loop: it points at the models folder itself");
    expect(warned).toContainEqual(expect.stringMatching(/^symlink other\.gguf -> .*secret\.gguf skipped: it points outside the allowed folders$/));
    expect(warned).toContainEqual(expect.stringMatching(/^symlink self -> \.\.\/linked-folder skipped: it leads back into a folder already listed$/));
    expect(lines.find((l) => l.msg.startsWith("skipping symlink escape.gguf"))!.target).toBe(join(outside, "secret.gguf"));
  });

  it("serves a Hugging Face snapshot folder given as the models folder (every file a link into blobs/)", async () => {
    const { logger, lines } = capture();
    const snapshot = join(base, "hub", "models--acme--tiny-GGUF", "snapshots", REV);
    const r = await buildModelRegistry(loadConfig({ base: { modelsDirs: [snapshot] } }), logger);
    expect(r.list().map((m) => [m.id, m.task])).toEqual([["tiny-q8", "chat"]]);
    expect(lines).toEqual([]);
  });

  it("detect names a skipped link in the warnings, and keeps a linked file's own name", async () => {
    const [d] = await detectSource(join(models, "linked-folder"));
    expect(d!.warnings).toContainEqual(expect.stringMatching(/^symlink other\.gguf -> .* skipped: it points outside the allowed folders$/));
    const [f] = await detectSource(join(base, "hub", "models--acme--tiny-GGUF", "snapshots", REV, "tiny-q8.gguf"));
    expect(f!.files.map((x) => x.path)).toEqual(["tiny-q8.gguf"]);
    expect(f!.engine?.name).toBe("node-llama-cpp");
  });
});
