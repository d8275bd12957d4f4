import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TransformersBackend } from "../../../src/backends/transformers/TransformersBackend.js";
import { systemClock } from "../../../src/core/Clock.js";
import type { CompletionRequest, GenerationChunk } from "../../../src/core/types.js";
import { loadConfig } from "../../../src/config/loadConfig.js";
import { describeLocalModels } from "../../../src/registry/ModelRegistry.js";
import { createDaemon, type Daemon } from "../../../src/server/createDaemon.js";
import { ProcessRegistry } from "../../../src/supervisor/ProcessRegistry.js";
import { ensureTinyLlm, pythonExecutable } from "../../fixtures/ensurePythonFixtures.js";
import { argAfter, childProcessInfo, rawRequest, tcpListenPorts, unixListenPaths } from "../llamaServer/childProbe.js";

const DAEMON_KEY = "daemon-key-for-sidecar-access-tests";
let llm: string;
let python: string;

/** The running sidecar of `pids`: pid, argv, socket (or port) and the key from its environment. */
async function sidecar(pids: number[]) {
  expect(pids).toHaveLength(1);
  const pid = pids[0]!;
  const { argv, env } = await childProcessInfo(pid);
  return { pid, argv, socketPath: argAfter(argv, "--socket"), port: Number(argAfter(argv, "--port")), key: env.TABAGENT_SIDECAR_KEY! };
}

beforeAll(async () => {
  [llm, python] = await Promise.all([ensureTinyLlm(), pythonExecutable()]);
}, 120_000);

describe("transformers sidecar access over its Unix socket", () => {
  let daemon: Daemon;
  let client: OpenAI;
  let closed = false;
  const logLines: string[] = [];
  const child = () => sidecar(daemon.processes.pids());

  beforeAll(async () => {
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
        models: [{ id: "hf-chat", path: llm }],
      },
    });
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logLines.push(chunk.toString("utf8")), done()) });
    daemon = await createDaemon({ config, env: { ...process.env, TABAGENT_PYTHON: python }, logger: pino({ level: "debug" }, sink) });
    const { url } = await daemon.listen();
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: DAEMON_KEY, maxRetries: 0, timeout: 120_000 });
    await client.completions.create({ model: "hf-chat", prompt: "Hi", max_tokens: 2 }); // loaded
  }, 120_000);
  afterAll(async () => {
    if (!closed) await daemon?.close();
  });

  it("listens only on a Unix socket in a 0700 directory of its own; no TCP port; the key is not on its command line", async () => {
    const { pid, argv, socketPath, key } = await child();
    expect(argv).not.toContain("--port");
    expect(await unixListenPaths(pid)).toEqual([socketPath]);
    expect(await tcpListenPorts(pid)).toEqual([]);
    expect((await stat(dirname(socketPath!))).mode & 0o777).toBe(0o700);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(argv.join(" ")).not.toContain(key);
  });

  it("straight to the sidecar: no key or a wrong one (the daemon's included) is refused with 401 and a JSON error", async () => {
    const { socketPath, key } = await child();
    const get = (path: string, headers: Record<string, string> = {}) => rawRequest({ socketPath: socketPath! }, { path, headers });
    for (const headers of [{} as Record<string, string>, { authorization: "Bearer wrong" }, { authorization: `Bearer ${DAEMON_KEY}` }, { authorization: key }]) {
      const res = await get("/v1/models", headers);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body).error).toMatchObject({ type: "authentication_error" });
    }
    expect((await get("/health")).status).toBe(401);
    const post = await rawRequest({ socketPath: socketPath! }, { method: "POST", path: "/v1/completions", body: JSON.stringify({ prompt: "Hi", max_tokens: 2 }) });
    expect(post.status).toBe(401);
    expect((await get("/v1/models", { authorization: `Bearer ${key}` })).status).toBe(200);
  });

  it("a cross-origin request or preflight, or a foreign Host, is refused with 403 and no CORS header, key or not", async () => {
    const { socketPath, key } = await child();
    const auth = { authorization: `Bearer ${key}` };
    const preflight = await rawRequest(
      { socketPath: socketPath! },
      {
        method: "OPTIONS",
        path: "/v1/chat/completions",
        headers: { origin: "https://evil.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization" },
      },
    );
    expect(preflight.status).toBe(403);
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
    expect(preflight.headers["access-control-allow-credentials"]).toBeUndefined();
    const crossOrigin = await rawRequest({ socketPath: socketPath! }, { path: "/v1/models", headers: { ...auth, origin: "https://evil.com" } });
    expect(crossOrigin.status).toBe(403);
    expect(crossOrigin.headers["access-control-allow-origin"]).toBeUndefined();
    expect(JSON.parse(crossOrigin.body).error).toMatchObject({ code: "origin_refused" });
    const rebound = await rawRequest({ socketPath: socketPath! }, { path: "/v1/models", headers: { ...auth, host: "evil.com:8080" } });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error).toMatchObject({ code: "host_refused" });
  });

  it("the daemon serves chat through the socket, streamed and not", async () => {
    const once = await client.chat.completions.create({ model: "hf-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0 });
    expect(once.choices[0]!.finish_reason).toBe("length");
    let text = "";
    for await (const c of await client.chat.completions.create({
      model: "hf-chat",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    })) {
      text += c.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe(once.choices[0]!.message.content);
  });

  it("no key is ever logged; the socket is", async () => {
    const { key, socketPath } = await child();
    const log = logLines.join("");
    expect(log).toContain(socketPath);
    expect(log).not.toContain(key);
    expect(log).not.toContain(DAEMON_KEY);
  });

  it("closing the daemon removes the socket and its directory", async () => {
    const { socketPath } = await child();
    closed = true;
    await daemon.close();
    expect(existsSync(socketPath!)).toBe(false);
    expect(existsSync(dirname(socketPath!))).toBe(false);
  });
});

describe("transformers sidecar over TCP (the fallback where there are no Unix sockets)", () => {
  it("still requires the key, refuses cross-origin requests and foreign Hosts, and serves the daemon", async () => {
    const [found] = await describeLocalModels(llm);
    const processes = new ProcessRegistry();
    const backend = new TransformersBackend(
      { id: "hf-tcp", ...found!.descriptor, engine: "transformers" },
      {
        logger: pino({ level: "silent" }),
        clock: systemClock,
        processes,
        env: { ...process.env, TABAGENT_PYTHON: python },
        threads: 1,
        parallel: 1,
        setup: null,
        stallTimeoutMs: 60_000,
        transport: "tcp",
      },
    );
    try {
      await backend.load(AbortSignal.timeout(120_000));
      const status = backend.processStatus!;
      const { pid, argv, port, key } = await sidecar(processes.pids());
      expect(status.port).toBe(port);
      expect(status.address).toBe(`127.0.0.1:${port}`);
      expect(await tcpListenPorts(pid)).toEqual([port]);
      expect(argv.join(" ")).not.toContain(key);
      const host = `127.0.0.1:${port}`;
      const get = (headers: Record<string, string>) => rawRequest({ port }, { path: "/v1/models", headers: { host, ...headers } });
      expect((await get({})).status).toBe(401);
      expect((await get({ authorization: "Bearer wrong" })).status).toBe(401);
      expect((await get({ authorization: `Bearer ${key}`, host: `evil.com:${port}` })).status).toBe(403);
      const cross = await get({ authorization: `Bearer ${key}`, origin: "https://evil.com" });
      expect(cross.status).toBe(403);
      expect(cross.headers["access-control-allow-origin"]).toBeUndefined();
      expect((await get({ authorization: `Bearer ${key}` })).status).toBe(200);
      const request: CompletionRequest = {
        model: "hf-tcp",
        prompt: "Hi",
        echo: false,
        n: 1,
        logprobs: null,
        returnTokenIds: false,
        responseFormat: { type: "text" },
        sampling: { maxTokens: 3, temperature: 0, topP: undefined, seed: undefined, presencePenalty: 0, frequencyPenalty: 0, stop: [] },
      };
      const chunks: GenerationChunk[] = [];
      for await (const c of backend.complete(request, AbortSignal.timeout(60_000))) chunks.push(c);
      expect(chunks).toContainEqual({ type: "finish", index: 0, reason: "length" });
    } finally {
      await backend.unload();
    }
    expect(processes.size).toBe(0);
  }, 120_000);
});
