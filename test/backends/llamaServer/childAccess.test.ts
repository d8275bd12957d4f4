import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { createDaemon, type Daemon } from "../../../src/server/createDaemon.js";
import { ensureFixtures } from "../../fixtures/ensureFixtures.js";
import { llamaServerBinary } from "../../helpers/llamaServerBinary.js";
import { argAfter, childProcessInfo, rawRequest, tcpListenPorts, unixListenPaths } from "./childProbe.js";

const DAEMON_KEY = "daemon-key-for-child-access-tests";
let daemon: Daemon;
let client: OpenAI;
let closed = false;
const logLines: string[] = [];
/** Every key a child was given during these tests. */
const keys = new Set<string>();

/** The running llama-server child: pid, socket, the key from its environment, and its argv. */
async function child() {
  const pids = daemon.processes.pids();
  expect(pids).toHaveLength(1);
  const pid = pids[0]!;
  const { argv, env } = await childProcessInfo(pid);
  const socketPath = argAfter(argv, "--host")!;
  keys.add(env.LLAMA_API_KEY!);
  return { pid, argv, env, socketPath, key: env.LLAMA_API_KEY! };
}

const chatBody = JSON.stringify({ messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });

beforeAll(async () => {
  process.env.TABAGENT_API_KEYS = DAEMON_KEY; // as `TABAGENT_API_KEYS=... tabagent serve` would have it
  const binary = await llamaServerBinary();
  const fx = await ensureFixtures();
  const config = loadConfig({
    base: {
      host: "127.0.0.1",
      port: 0,
      threads: 1,
      gpu: "off",
      contextSize: 512,
      parallel: 1,
      logLevel: "debug",
      apiKeys: [DAEMON_KEY],
      // Arguments that would undo the private endpoint are dropped (the others are kept).
      models: [{ id: "srv-chat", path: fx.chatModelPath, engine: "llama-server", args: ["--port", "1", "--api-key", "config-key", "--host=0.0.0.0", "--seed", "7"] }],
    },
  });
  // Every log line (debug included, the child's own output too), to check that no key is ever written.
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logLines.push(chunk.toString("utf8")), done()) });
  daemon = await createDaemon({ config, env: { ...process.env, TABAGENT_LLAMA_SERVER: binary }, logger: pino({ level: "debug" }, sink) });
  const { url } = await daemon.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: DAEMON_KEY, maxRetries: 0, timeout: 60_000 });
  await client.chat.completions.create({ model: "srv-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }); // loaded
}, 120_000);
afterAll(async () => {
  delete process.env.TABAGENT_API_KEYS;
  if (!closed) await daemon?.close();
});

describe("llama-server child access (the daemon's key, CORS and Host checks cannot be bypassed)", () => {
  it("listens only on a Unix socket in a 0700 directory of its own; no TCP port; the key is not on its command line", async () => {
    const { pid, argv, socketPath, key } = await child();
    expect(socketPath).toMatch(/\.sock$/);
    expect(argv).not.toContain("--port");
    expect(argv.filter((a) => a.startsWith("--host") || a.startsWith("--api-key") || a === "config-key")).toEqual(["--host"]);
    expect(argAfter(argv, "--seed")).toBe("7");
    expect(await unixListenPaths(pid)).toEqual([socketPath]);
    expect(await tcpListenPorts(pid)).toEqual([]);
    expect((await stat(dirname(socketPath))).mode & 0o777).toBe(0o700);
    expect((await stat(socketPath)).isSocket()).toBe(true);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(argv.join(" ")).not.toContain(key);
  });

  it("does not inherit the daemon's own keys", async () => {
    const { env } = await child();
    expect(env.TABAGENT_API_KEYS).toBeUndefined();
    expect(Object.values(env).join("\n")).not.toContain(DAEMON_KEY);
  });

  it("straight to the child: no key or a wrong one (the daemon's included) is refused with 401; its own key works", async () => {
    const { socketPath, key } = await child();
    const post = (headers: Record<string, string>) => rawRequest({ socketPath }, { method: "POST", path: "/v1/chat/completions", headers, body: chatBody });
    expect((await post({})).status).toBe(401);
    expect((await post({ authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post({ authorization: `Bearer ${DAEMON_KEY}` })).status).toBe(401);
    expect((await rawRequest({ socketPath }, { path: "/v1/models" })).status).toBe(401);
    expect((await post({ authorization: `Bearer ${key}` })).status).toBe(200);
  });

  it("a browser cannot reach it: no TCP port a page (or DNS rebinding) could name, and a preflight still needs the socket", async () => {
    const { pid, socketPath } = await child();
    expect(await tcpListenPorts(pid)).toEqual([]);
    // Even on the socket, a cross-origin request without the key gets nothing.
    const res = await rawRequest(
      { socketPath },
      { method: "POST", path: "/v1/chat/completions", headers: { origin: "https://evil.com", host: "evil.com" }, body: chatBody },
    );
    expect(res.status).toBe(401);
  });

  it("the daemon serves chat through the socket, streamed and not", async () => {
    const once = await client.chat.completions.create({ model: "srv-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0 });
    expect(once.choices[0]!.finish_reason).toBe("length");
    expect(once.usage!.completion_tokens).toBe(8);
    let text = "";
    for await (const c of await client.chat.completions.create({
      model: "srv-chat",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    })) {
      text += c.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe(once.choices[0]!.message.content);
  });

  it("a restart gets a fresh socket, directory and key; the old directory is removed", async () => {
    const before = await child();
    process.kill(before.pid, "SIGKILL");
    const r = await client.chat.completions.create({ model: "srv-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe("length");
    const after = await child();
    expect(after.pid).not.toBe(before.pid);
    expect(dirname(after.socketPath)).not.toBe(dirname(before.socketPath));
    expect(after.key).not.toBe(before.key);
    expect(existsSync(dirname(before.socketPath))).toBe(false);
  }, 60_000);

  it("no key is ever logged; the socket is", async () => {
    const { socketPath } = await child();
    const log = logLines.join("");
    expect(log).toContain(socketPath);
    expect(keys.size).toBeGreaterThanOrEqual(2);
    for (const key of keys) expect(log).not.toContain(key);
    expect(log).not.toContain(DAEMON_KEY);
  });

  it("closing the daemon removes the socket and its directory", async () => {
    const { socketPath } = await child();
    closed = true;
    await daemon.close();
    expect(daemon.processes.pids()).toEqual([]);
    expect(existsSync(socketPath)).toBe(false);
    expect(existsSync(dirname(socketPath))).toBe(false);
  });
});
