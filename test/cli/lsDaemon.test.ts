import { mkdtempSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/spawnCli.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

// The built CLI (dist/: `npm run build` first) against a daemon started in process, serving the two tiny models.

interface Row {
  id: string;
  source: string;
  location: string;
  served: boolean | null;
  loaded: boolean | null;
  format: string | null;
  task: string | null;
}

/** A port nothing listens on (fetch refuses well-known "bad" ports such as 1 and 9 before connecting). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let d: TestDaemon;
const env = { TABAGENT_DATA_DIR: mkdtempSync(join(tmpdir(), "ls-daemon-")), TABAGENT_DISCOVER: "none" };

beforeAll(async () => {
  d = await startTestDaemon();
});
afterAll(async () => {
  await d?.close();
});

describe("tabagent ls lists what a running daemon serves", () => {
  it("with no local models, lists the daemon's, marked as the daemon's", async () => {
    const r = await runCli(["ls", "--url", d.url], env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/No models/);
    expect(r.stdout).toMatch(/^ID\s+FORMAT\s+TASK\s+SIZE\s+ENGINE\s+SOURCE\s+LOADED\n/);
    expect(r.stdout).toMatch(new RegExp(`tiny-chat\\s+gguf\\s+chat\\s+\\d+\\.\\d KiB\\s+node-llama-cpp\\s+daemon \\(${d.url}\\)\\s+no`));
    expect(r.stdout).toMatch(new RegExp(`tiny-embed\\s+gguf\\s+embeddings\\s+.*daemon \\(${d.url}\\)\\s+no`));
    expect(r.stdout).toContain(`(daemon at ${d.url}: 2 models served)`);
  });

  it("marks a loaded model, and shows local models beside the daemon's", async () => {
    await d.client.embeddings.create({ model: "tiny-embed", input: "hi" });
    const r = await runCli(["ls", "--json", "--url", d.url, "--model", `tiny-chat=${d.fixtures.chatModelPath}`, "--model", `other=${d.fixtures.chatModelPath}`], env);
    expect(r.stderr).toBe("");
    const rows = JSON.parse(r.stdout) as Row[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    // Found here and served there: listed once, as local, with the daemon's state.
    expect(byId.get("tiny-chat")).toMatchObject({ source: "config", served: true, loaded: false });
    // Only here: not served by that daemon.
    expect(byId.get("other")).toMatchObject({ source: "config", served: false, loaded: false });
    // Only there.
    expect(byId.get("tiny-embed")).toMatchObject({ source: "daemon", location: d.url, served: true, loaded: true, format: "gguf", task: "embeddings" });
    expect(rows).toHaveLength(3);
  });

  it("says in one line that no daemon answered, and lists the local models", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const r = await runCli(["ls", "--url", closed, "--model", `tiny-chat=${d.fixtures.chatModelPath}`], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tiny-chat\s+gguf\s+chat\s+.*config \(.*tiny-chat\.gguf\)\s+-\n/);
    const notes = r.stdout.split("\n").filter((l) => /daemon/.test(l));
    expect(notes).toEqual([
      `(no daemon answered at ${closed}: nothing is listening there; local models only. Start one with \`tabagent serve\`, or name one with --url)`,
    ]);
  });
});
