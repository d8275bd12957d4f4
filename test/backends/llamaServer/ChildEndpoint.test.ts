import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { ChildEndpoint, defaultTransport } from "../../../src/backends/childServer/ChildEndpoint.js";

const scratch = await mkdtemp(join(tmpdir(), "endpoint-test-"));
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe("ChildEndpoint", () => {
  it("a Unix socket in a fresh 0700 directory and a fresh 256-bit key per start; close removes the directory", async () => {
    const a = await ChildEndpoint.create({ base: scratch });
    const b = await ChildEndpoint.create({ base: scratch });
    expect(a.socketPath).toMatch(/\.sock$/);
    expect(a.port).toBeNull();
    expect(a.dir).not.toBe(b.dir);
    expect(a.key).toMatch(/^[0-9a-f]{64}$/);
    expect(a.key).not.toBe(b.key);
    expect((await stat(a.dir!)).mode & 0o777).toBe(0o700);
    expect(a.baseUrl).toBe("http://localhost/v1");
    await a.close();
    await a.close(); // idempotent
    expect(existsSync(a.dir!)).toBe(false);
    await b.close();
  });

  it("a temp folder too long for a socket path falls back to /tmp", async () => {
    const deep = join(scratch, "x".repeat(90));
    await mkdir(deep, { recursive: true });
    const e = await ChildEndpoint.create({ base: deep });
    try {
      expect(e.socketPath!.startsWith("/tmp/tabagent-")).toBe(true);
      expect(Buffer.byteLength(e.socketPath!)).toBeLessThan(104);
    } finally {
      await e.close();
    }
  });

  it("never shows its key in JSON, inspect or a log line", async () => {
    const e = await ChildEndpoint.create({ base: scratch });
    const lines: string[] = [];
    pino({}, { write: (s: string) => void lines.push(s) }).info({ endpoint: e }, "x");
    for (const text of [JSON.stringify({ e }), inspect(e), String(e), lines.join("")]) {
      expect(text).not.toContain(e.key);
      expect(text).toContain(e.socketPath!);
    }
    await e.close();
  });

  it("TCP (the fallback where Node has no Unix sockets) still has a key", async () => {
    const e = await ChildEndpoint.create({ transport: "tcp" });
    expect(e.socketPath).toBeNull();
    expect(e.port).toBeGreaterThan(0);
    expect(e.key).toMatch(/^[0-9a-f]{64}$/);
    expect(e.hostHeader).toBe(`127.0.0.1:${e.port}`);
    await e.close();
    expect(defaultTransport("win32")).toBe("tcp");
    expect(defaultTransport("linux")).toBe("unix");
    expect(defaultTransport("darwin")).toBe("unix");
  });
});
