import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/loadConfig.js";
import { ConfigError } from "../../src/core/errors.js";
import { buildModelRegistry } from "../../src/registry/ModelRegistry.js";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";

let dir: string;
let fx: FixturePaths;
const logger = pino({ level: "silent" });

beforeAll(async () => {
  fx = await ensureFixtures();
  dir = await mkdtemp(join(tmpdir(), "registry-"));
  await copyFile(fx.chatModelPath, join(dir, "alpha.gguf"));
  await copyFile(fx.embeddingModelPath, join(dir, "beta.GGUF"));
  await copyFile(fx.chatModelPath, join(dir, "mmproj-alpha-f16.gguf"));
  await writeFile(join(dir, "broken.gguf"), "not a model");
  await writeFile(join(dir, "notes.txt"), "hello");
  await mkdir(join(dir, "sub", "deeper"), { recursive: true });
  await copyFile(fx.chatModelPath, join(dir, "sub", "gamma.gguf"));
  await copyFile(fx.chatModelPath, join(dir, "sub", "deeper", "too-deep.gguf")); // inside a model folder: found
  await copyFile(fx.chatModelPath, join(dir, "sub", "alpha.gguf")); // duplicate id: skipped
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("buildModelRegistry", () => {
  it("serves every model in a folder (GGUF files, folders of them), skipping projectors and unreadable files", async () => {
    const r = await buildModelRegistry(loadConfig({ base: { modelsDirs: [dir] } }), logger);
    expect(r.list().map((m) => [m.id, m.task])).toEqual([
      ["alpha", "chat"],
      ["beta", "embeddings"],
      ["gamma", "chat"],
      ["too-deep", "chat"],
    ]);
    expect(r.get("alpha")!.path).toBe(join(dir, "alpha.gguf"));
  });

  it("uses explicit ids and refuses duplicates and unreadable files among --model entries", async () => {
    const r = await buildModelRegistry(loadConfig({ base: { models: [{ id: "x", path: fx.chatModelPath }, { path: fx.embeddingModelPath }] } }), logger);
    expect(r.list().map((m) => m.id)).toEqual(["tiny-embed", "x"]);
    await expect(
      buildModelRegistry(
        loadConfig({
          base: {
            models: [
              { id: "x", path: fx.chatModelPath },
              { id: "x", path: fx.embeddingModelPath },
            ],
          },
        }),
        logger,
      ),
    ).rejects.toThrow(/two models have the id 'x'/);
    await expect(buildModelRegistry(loadConfig({ base: { models: [{ path: join(dir, "broken.gguf") }] } }), logger)).rejects.toThrow(ConfigError);
    await expect(buildModelRegistry(loadConfig({ base: { models: [{ path: dir }] } }), logger)).rejects.toThrow(/holds \d+ models; name one file/);
  });

  it("refuses a file name that is not a valid id unless an id is given", async () => {
    const odd = join(dir, "sub", "has space.gguf");
    await copyFile(fx.chatModelPath, odd);
    await expect(buildModelRegistry(loadConfig({ base: { models: [{ path: odd }] } }), logger)).rejects.toThrow(/not a valid model id/);
    const r = await buildModelRegistry(loadConfig({ base: { models: [{ id: "ok", path: odd }] } }), logger);
    expect(r.get("ok")).toBeDefined();
    await rm(odd);
  });

  it("reports a missing folder", async () => {
    await expect(buildModelRegistry(loadConfig({ base: { modelsDirs: [join(dir, "nope")] } }), logger)).rejects.toThrow(/cannot read/);
  });
});
