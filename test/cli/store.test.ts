import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, stat, symlink, writeFile, copyFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { runCli, startServe, type ServeProcess } from "../helpers/spawnCli.js";
import { safetensorsRepo, tempDir } from "../store/storeRepos.js";

let hub: FakeHub;
let home: Awaited<ReturnType<typeof tempDir>>;
let fixtures: FixturePaths;
let chat: Buffer;
const started: ServeProcess[] = [];
const CLOSED_URL = "http://127.0.0.1:9"; // nothing listens: "no daemon"

interface LsRow {
  id: string;
  format: string;
  task: string;
  source: string;
  location: string;
  path: string;
  loaded: boolean | null;
}

const env = () => ({
  HOME: home.path,
  HF_HUB_CACHE: join(home.path, "hub"),
  HF_ENDPOINT: hub.url,
  HF_TOKEN: "",
  TABAGENT_DATA_DIR: join(home.path, "data"),
  OLLAMA_MODELS: "",
  XDG_CACHE_HOME: "",
});

async function ls(...args: string[]): Promise<LsRow[]> {
  const r = await runCli(["ls", "--json", "--url", CLOSED_URL, ...args], env());
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as LsRow[];
}

beforeAll(async () => {
  fixtures = await ensureFixtures();
  chat = await readFile(fixtures.chatModelPath);
  home = await tempDir("home-");
  hub = await startFakeHub({ "acme/tiny-chat-GGUF": { files: { "tiny-chat-Q8_0.gguf": chat } }, "acme/tiny-st": safetensorsRepo() });
  expect((await runCli(["pull", "--quiet", "acme/tiny-chat-GGUF", "acme/tiny-st"], env())).code).toBe(0);

  // LM Studio: one model of its own, and a copy of the store's model under the same publisher/repo (same id).
  const lms = join(home.path, ".lmstudio", "models");
  await mkdir(join(lms, "lmstudio-community", "embed-GGUF"), { recursive: true });
  await copyFile(fixtures.embeddingModelPath, join(lms, "lmstudio-community", "embed-GGUF", "embed-Q8_0.gguf"));
  await mkdir(join(lms, "acme", "tiny-chat-GGUF"), { recursive: true });
  await copyFile(fixtures.chatModelPath, join(lms, "acme", "tiny-chat-GGUF", "tiny-chat-Q8_0.gguf"));

  // Ollama: a model of its own (distinct bytes), and one whose blob is the store's file (same sha256).
  const ollama = join(home.path, ".ollama", "models");
  const own = Buffer.concat([chat, Buffer.from("ollama-copy")]);
  const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  await mkdir(join(ollama, "blobs"), { recursive: true });
  for (const [name, content] of [
    ["tiny", own],
    ["dup", chat],
  ] as const) {
    await writeFile(join(ollama, "blobs", `sha256-${digest(content)}`), content);
    const dir = join(ollama, "manifests", "registry.ollama.ai", "library", name);
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, "latest"),
      JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${digest(content)}`, size: content.length }] }),
    );
  }
  // A hostile manifest: its digest would name a path outside the blobs folder.
  const evil = join(ollama, "manifests", "registry.ollama.ai", "library", "evil");
  await mkdir(evil, { recursive: true });
  await writeFile(join(evil, "latest"), JSON.stringify({ layers: [{ mediaType: "application/vnd.ollama.image.model", digest: "sha256:../../../../etc/passwd" }] }));
});
afterEach(() => {
  for (const s of started.splice(0)) s.child.kill("SIGKILL");
});
afterAll(async () => {
  await hub.close();
  await home.cleanup();
});

describe("tabagent ls", () => {
  it("lists store, LM Studio and Ollama models, each once", async () => {
    const rows = await ls();
    expect(rows.map((r) => `${r.id} ${r.source} ${r.format} ${r.task}`).sort()).toEqual([
      "acme--tiny-chat-GGUF:Q8_0 store gguf chat",
      "acme--tiny-st store safetensors chat",
      "lmstudio-community--embed-GGUF:Q8_0 lmstudio gguf embeddings",
      "tiny:latest ollama gguf chat",
    ]);
    expect(rows.every((r) => r.loaded === null)).toBe(true);
    expect(rows.find((r) => r.id === "tiny:latest")?.location).toBe("tiny:latest");
  });

  it("prints a table, and remembers detections between runs (--refresh detects again)", async () => {
    const r = await runCli(["ls", "--url", CLOSED_URL], env());
    expect(r.stdout).toMatch(/^ID\s+FORMAT\s+TASK\s+SIZE\s+ENGINE\s+SOURCE\s+LOADED\n/);
    expect(r.stdout).toMatch(/acme--tiny-chat-GGUF:Q8_0\s+gguf\s+chat\s+\d+\.\d KiB\s+node-llama-cpp\s+store \(acme\/tiny-chat-GGUF@[0-9a-f]{12}\)\s+-/);
    expect((await stat(join(home.path, "data", "detections.json"))).size).toBeGreaterThan(100);
    expect((await ls("--refresh")).length).toBe(4);
  });

  it("config discovery can be narrowed", async () => {
    // Without the store in the picture, Ollama's copy of the store's file is listed under its own name.
    expect((await ls("--discover", "ollama")).map((r) => r.id)).toEqual(["dup:latest", "tiny:latest"]);
    expect(await ls("--discover", "none")).toEqual([]);
  });
});

describe("tabagent rm", () => {
  it("refuses models it does not own", async () => {
    const r = await runCli(["rm", "--url", CLOSED_URL, "lmstudio-community--embed-GGUF:Q8_0", "tiny:latest", "nope"], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lmstudio-community--embed-GGUF:Q8_0: not in the store: it comes from lmstudio/);
    expect(r.stderr).toMatch(/tiny:latest: not in the store: it comes from ollama/);
    expect(r.stderr).toMatch(/nope: no such model/);
    expect((await ls()).length).toBe(4);
  });

  it("refuses a model a running daemon has loaded", async () => {
    const s = await startServe([], { ...env(), TABAGENT_DISCOVER: "store" });
    started.push(s);
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "acme--tiny-chat-GGUF:Q8_0", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    const listed = await runCli(["ls", "--json", "--url", s.url], env());
    expect((JSON.parse(listed.stdout) as LsRow[]).find((r) => r.id === "acme--tiny-chat-GGUF:Q8_0")?.loaded).toBe(true);
    const r = await runCli(["rm", "--url", s.url, "acme--tiny-chat-GGUF:Q8_0"], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a running daemon has it loaded/);
    expect((await ls()).some((m) => m.id === "acme--tiny-chat-GGUF:Q8_0")).toBe(true);
  });

  it("removes a pulled model's links and blobs, never what a link outside the store points to", async () => {
    const outside = await tempDir("outside-");
    try {
      const victim = join(outside.path, "victim.json");
      await writeFile(victim, "{}");
      const snap = join(home.path, "hub", "models--acme--tiny-st", "snapshots", hub.commitOf("acme/tiny-st"));
      await symlink(victim, join(snap, "planted.json"));
      const r = await runCli(["rm", "--url", CLOSED_URL, "acme--tiny-st", "acme--tiny-chat-GGUF:Q8_0"], env());
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/removed acme--tiny-st \(\d+\.\d KiB freed\)\nremoved acme--tiny-chat-GGUF:Q8_0 \(\d+\.\d KiB freed\)/);
      expect(await readFile(victim, "utf8")).toBe("{}");
      expect(await readdir(join(home.path, "hub"))).toEqual([]);
      // The LM Studio and Ollama copies of the chat model are listed now that the store's is gone.
      expect((await ls()).map((m) => `${m.id} ${m.source}`).sort()).toEqual([
        "acme--tiny-chat-GGUF:Q8_0 lmstudio",
        "dup:latest ollama",
        "lmstudio-community--embed-GGUF:Q8_0 lmstudio",
        "tiny:latest ollama",
      ]);
    } finally {
      await outside.cleanup();
    }
  });
});

describe("tabagent config check", () => {
  const write = async (name: string, text: string) => {
    const p = join(home.path, name);
    await writeFile(p, text);
    return p;
  };

  it("accepts a valid YAML file and refuses a model path that does not exist", async () => {
    const file = await write(
      "ok.yaml",
      `port: 9000
maxLoadedModels: 2
memoryBudget: 8GiB
aliases:
  chat: qwen
models:
  - id: qwen
    source: Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
    contextSize: 8192
    ttlSeconds: 60
    preload: true
  - id: local
    path: nowhere/model.gguf
`,
    );
    // serve refuses a model path that does not exist, so the check does too; the hub model is pulled when serve starts.
    const r = await runCli(["config", "check", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ok\.yaml: Invalid setting 'models\[1\]': cannot serve .*nowhere\/model\.gguf: no such file or folder/);
    await writeFile(file, (await readFile(file, "utf8")).replace(/ {2}- id: local\n.*\n$/, ""));
    const ok = await runCli(["config", "check", file]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/ok\.yaml: OK \(1 model, 1 from the hub, 0 models dirs, 1 aliases, 0 upstreams; 0 local models to serve\)/);
  });

  it.each([
    [
      "bad-key.yaml",
      "models:\n  - id: x\n    path: /m.gguf\n    contextSize: 10\n",
      /bad-key\.yaml: Invalid setting 'models\[0\]\.contextSize \(from .*bad-key\.yaml\)': Too small: expected number to be >=64/,
    ],
    ["both.yaml", "models:\n  - id: x\n    path: /m.gguf\n    source: a/b\n", /models\[0\]\.path .*give either path or source/],
    ["source.yaml", "models:\n  - id: x\n    source: ../../etc\n", /source must be owner\/name/],
    ["budget.yaml", "memoryBudget: lots\n", /memoryBudget \(from .*budget\.yaml\)/],
    ["syntax.yaml", "port: 1\n  bad: [\n", /syntax\.yaml: .*cannot read .*syntax\.yaml: Nested mappings are not allowed in compact mappings at line 1, column 7$/m],
    ["dup.yaml", "port: 1\nport: 2\n", /dup\.yaml: .*'port .*duplicate key at line 2, column 1 \(first at line 1, column 1\)/],
    ["unknown.json", JSON.stringify({ maxLoaded: 1 }), /'maxLoaded \(from .*unknown\.json\)': unknown setting/],
  ])("names the file, the key and the problem: %s", async (name, text, message) => {
    const r = await runCli(["config", "check", await write(name, text)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
