import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileLock } from "../../src/store/FileLock.js";
import { tempDir } from "./storeRepos.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
let lockPath: string;
beforeEach(async () => {
  dir = await tempDir("lock-");
  lockPath = join(dir.path, "blob.lock");
});
afterEach(async () => {
  await dir.cleanup();
});

const exists = (path: string) =>
  readFile(path).then(
    () => true,
    () => false,
  );

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  return child.pid;
}

describe("FileLock", () => {
  it("holds the owner's pid while held and removes the file on release (twice is harmless)", async () => {
    const lock = await FileLock.acquire(lockPath);
    expect(await readFile(lockPath, "utf8")).toBe(String(process.pid));
    await lock.release();
    expect(await exists(lockPath)).toBe(false);
    await lock.release();
  });

  it("a second taker waits (saying so once) until the first releases", async () => {
    const first = await FileLock.acquire(lockPath);
    let waits = 0;
    let taken = false;
    const second = FileLock.acquire(lockPath, { pollMs: 5, onWait: () => waits++ }).then((l) => ((taken = true), l));
    await new Promise((r) => setTimeout(r, 40));
    expect(taken).toBe(false);
    expect(waits).toBe(1);
    await first.release();
    await (await second).release();
    expect(waits).toBe(1);
  });

  it("takes over a lock left by a process that died", async () => {
    await writeFile(lockPath, String(deadPid()));
    let waited = false;
    const lock = await FileLock.acquire(lockPath, { pollMs: 5, onWait: () => (waited = true) });
    expect(waited).toBe(false);
    expect(await readFile(lockPath, "utf8")).toBe(String(process.pid));
    await lock.release();
  });

  it("waits for a lock being written (empty) or held by a live process, until aborted", async () => {
    for (const content of ["", String(process.pid)]) {
      await writeFile(lockPath, content);
      const ac = new AbortController();
      const waiting = FileLock.acquire(lockPath, { pollMs: 5, signal: ac.signal });
      setTimeout(() => ac.abort(new Error("gave up")), 30);
      await expect(waiting).rejects.toThrow("gave up");
      expect(await readFile(lockPath, "utf8")).toBe(content); // never taken over
    }
  });

  it("an already aborted signal takes nothing", async () => {
    await expect(FileLock.acquire(lockPath, { signal: AbortSignal.abort(new Error("no")) })).rejects.toThrow("no");
    expect(await exists(lockPath)).toBe(false);
  });

  it("other errors than an existing lock are thrown", async () => {
    await expect(FileLock.acquire(join(dir.path, "missing", "x.lock"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("FileLock.tryAcquire (a daemon's data folder)", () => {
  it("takes a free lock with its details, updates them whole, and names a live holder without waiting", async () => {
    const got = await FileLock.tryAcquire(lockPath, { details: ["starting"] });
    expect(got.lock).toBeDefined();
    expect(await readFile(lockPath, "utf8")).toBe(`${process.pid}\nstarting\n`);
    await got.lock!.update(["http://127.0.0.1:8471"]);
    expect(await readFile(lockPath, "utf8")).toBe(`${process.pid}\nhttp://127.0.0.1:8471\n`);
    await got.lock!.release();
    // Held by a live process (the one that started this test): its pid and details, at once.
    await writeFile(lockPath, `${process.ppid}\nhttp://127.0.0.1:9000\n`);
    expect(await FileLock.tryAcquire(lockPath)).toEqual({ owner: { pid: process.ppid, details: ["http://127.0.0.1:9000"] } });
    expect(await readFile(lockPath, "utf8")).toBe(`${process.ppid}\nhttp://127.0.0.1:9000\n`);
  });

  it.each([
    ["a dead pid", () => `${deadPid()}\nhttp://x\n`],
    ["this process's own pid (left by an earlier process with the same pid)", () => `${process.pid}\n`],
  ])("takes over a lock left by %s", async (_name, text) => {
    await writeFile(lockPath, text());
    const got = await FileLock.tryAcquire(lockPath, { details: ["mine"] });
    expect(got.lock).toBeDefined();
    expect(await readFile(lockPath, "utf8")).toBe(`${process.pid}\nmine\n`);
  });

  it("takes over a live pid that isStale calls stale, and a file left empty past the grace period", async () => {
    await writeFile(lockPath, `${process.ppid}\n`);
    expect((await FileLock.tryAcquire(lockPath, { isStale: (o) => o.pid === process.ppid })).lock).toBeDefined();
    await writeFile(lockPath, "");
    const started = Date.now();
    expect((await FileLock.tryAcquire(lockPath, { emptyGraceMs: 100 })).lock).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it("acquire reads the pid from the first line of a lock with details", async () => {
    await writeFile(lockPath, `${deadPid()}\nhttp://x\n`);
    const lock = await FileLock.acquire(lockPath, { pollMs: 5 });
    expect(await readFile(lockPath, "utf8")).toBe(String(process.pid));
    await lock.release();
  });
});
