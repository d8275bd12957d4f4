import { execa } from "execa";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BIN, runCli } from "../helpers/spawnCli.js";
import { startFakeHub, type FakeHub } from "../helpers/fakeHub.js";
import { bytes, ggufRepo, tempDir } from "../store/storeRepos.js";

let hub: FakeHub;
let store: Awaited<ReturnType<typeof tempDir>>;
const slowSize = 2 << 20;

beforeAll(async () => {
  hub = await startFakeHub({
    "acme/tiny-GGUF": ggufRepo(),
    // 32 chunks of 64 KiB, 40 ms apart: about 1.3 s, long enough to watch and to interrupt.
    "acme/slow-GGUF": { chunkDelayMs: 40, files: { "slow-Q4_K_M.gguf": bytes(slowSize, 11) } },
    "acme/gated-GGUF": { gated: true, files: { "g-Q4_K_M.gguf": bytes(1000, 7) } },
  });
});
afterAll(async () => {
  await hub.close();
});
beforeEach(async () => {
  store = await tempDir("cli-store-");
  hub.resetStats();
});
afterEach(async () => {
  await store.cleanup();
});

const env = () => ({ HF_HUB_CACHE: store.path, HF_ENDPOINT: hub.url, HF_TOKEN: "" });

describe("tabagent pull", () => {
  it("pulls a GGUF repo and prints the id and path; progress lines go to stderr", async () => {
    const r = await runCli(["pull", "acme/tiny-GGUF:Q8_0"], env());
    expect(r.code).toBe(0);
    const commit = hub.commitOf("acme/tiny-GGUF");
    expect(r.stdout).toMatch(
      new RegExp(`^acme--tiny-GGUF:Q8_0  ${store.path}/models--acme--tiny-GGUF/snapshots/${commit}/tiny-Q8_0.gguf  \\(256\\.0 KiB downloaded in \\d+\\.\\d s\\)$`),
    );
    expect(r.stderr).toMatch(/pulling acme\/tiny-GGUF@[0-9a-f]{12} \(gguf Q8_0\): 1 file, 256\.0 KiB/);
    expect(r.stderr).toMatch(/tiny-Q8_0\.gguf: done, 256\.0 KiB in/);
    expect(r.stderr).not.toMatch(/\r|\x1b\[/); // no terminal control codes in a pipe
    const again = await runCli(["pull", "acme/tiny-GGUF:Q8_0"], env());
    expect(again.stdout).toMatch(/\(already in the store\)/);
  });

  it("--json writes one JSON object per line", async () => {
    const r = await runCli(["pull", "--json", "acme/tiny-GGUF"], env());
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines.map((l) => l.type)).toEqual(expect.arrayContaining(["resolved", "file", "file-done", "done"]));
    expect(lines.at(-1)).toMatchObject({ type: "done", id: "acme--tiny-GGUF:Q4_K_M", fetched_bytes: 256 << 10 });
  });

  it("says how to get access to a gated repo, exit 1", async () => {
    const r = await runCli(["pull", "acme/gated-GGUF"], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /acme\/gated-GGUF is gated or private on http:\/\/127\.0\.0\.1:\d+: accept its licence .* set HF_TOKEN, or `hfTokenFile` in the config file/,
    );
    expect(r.stderr).not.toMatch(/\b401\b/);
  });

  it("refuses a source with a traversal, exit 1, nothing written", async () => {
    const r = await runCli(["pull", "acme/tiny-GGUF:../../../x.gguf"], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a Hugging Face model/);
    expect(await readdir(store.path)).toEqual([]);
  });

  // script(1) is util-linux (essential on Debian); elsewhere the renderer's unit tests still run.
  it.skipIf(!existsSync("/usr/bin/script") && !existsSync("/bin/script"))("draws a progress bar with bytes, speed and ETA on a terminal (pseudo-TTY)", async () => {
    // script(1) gives the CLI a real pty; its output is the terminal's byte stream.
    const cmd = `${process.execPath} ${BIN} pull acme/slow-GGUF`;
    const r = await execa("script", ["-qfec", cmd, "/dev/null"], { env: { ...env(), COLUMNS: "100", TERM: "xterm" }, reject: false, timeout: 60_000 });
    expect(r.exitCode).toBe(0);
    const out = String(r.stdout);
    const frames = out.split("\r\x1b[2K").slice(1);
    expect(frames.length).toBeGreaterThan(3);
    expect(frames.some((f) => /slow-Q4_K_M\.gguf \[#+ *\]\s+\d+% \d+\.\d (KiB|MiB)\/2\.0 MiB\s+\d+\.\d (KiB|MiB)\/s\s+ETA \d+:\d\d/.test(f))).toBe(true);
    expect(out).toMatch(/100% 2\.0 MiB\/2\.0 MiB/);
  });

  it("Ctrl-C keeps only the partial file; the next pull resumes from it", async () => {
    const child = execa(process.execPath, [BIN, "pull", "acme/slow-GGUF"], { env: env(), reject: false, buffer: true, all: true });
    // Wait until some bytes are on disk, then interrupt.
    const blobs = join(store.path, "models--acme--slow-GGUF", "blobs");
    const partial = join(blobs, `${hub.sha256Of("acme/slow-GGUF", "slow-Q4_K_M.gguf")}.incomplete`);
    for (let i = 0; i < 200; i++) {
      const size = await readFile(partial)
        .then((b) => b.length)
        .catch(() => 0);
      if (size >= 256 << 10) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill("SIGINT");
    const r = await child;
    expect(r.exitCode).toBe(130);
    expect(String(r.stderr)).toMatch(/interrupted; the partial download is kept/);
    expect((await readdir(blobs)).sort()).toEqual([`${hub.sha256Of("acme/slow-GGUF", "slow-Q4_K_M.gguf")}.incomplete`]);
    const kept = (await readFile(partial)).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(slowSize);
    expect(await readdir(join(store.path, "models--acme--slow-GGUF", "snapshots", hub.commitOf("acme/slow-GGUF")))).toEqual([]);

    hub.resetStats();
    const again = await runCli(["pull", "--json", "acme/slow-GGUF"], env());
    expect(again.code).toBe(0);
    const done = JSON.parse(again.stdout.trim().split("\n").at(-1)!) as { resumed_bytes: number; fetched_bytes: number; path: string };
    expect(done.resumed_bytes).toBe(kept);
    expect(done.fetched_bytes).toBe(slowSize - kept);
    expect(hub.stats.bytesServed).toBe(slowSize - kept);
    expect(
      createHash("sha256")
        .update(await readFile(done.path))
        .digest("hex"),
    ).toBe(hub.sha256Of("acme/slow-GGUF", "slow-Q4_K_M.gguf"));
  });

  it("two pull processes of the same model download it once", async () => {
    const [a, b] = await Promise.all([runCli(["pull", "acme/slow-GGUF"], env()), runCli(["pull", "acme/slow-GGUF"], env())]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(hub.stats.bytesServed).toBe(slowSize);
    expect(`${a.stderr}${b.stderr}`).toMatch(/another pull is downloading it; waiting/);
    expect(a.stdout.split("  ")[1]).toBe(b.stdout.split("  ")[1]);
  });
});
