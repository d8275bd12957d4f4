import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/loadConfig.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { createLogger } from "../../src/server/createLogger.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";

const KEY = "test-key-0123456789abcdef";
/** Port 9 (discard) on loopback: nothing listens, so the upstream is down at once and its error names the address. */
const UPSTREAM = "http://127.0.0.1:9/v1";

const daemons: Daemon[] = [];
afterAll(async () => {
  for (const d of daemons) await d.close();
});

/** A daemon serving the tiny chat model and one (unreachable) upstream; its log lines are collected. */
async function start(overrides: Record<string, unknown>) {
  const fx = await ensureFixtures();
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const config = loadConfig({
    base: {
      port: 0,
      models: [{ id: "tiny-chat", path: fx.chatModelPath }],
      ggufEngine: "node-llama-cpp",
      upstreams: [{ name: "lab", baseUrl: UPSTREAM, prefix: "lab/", connectTimeoutMs: 1000 }],
      ...overrides,
    },
  });
  const daemon = await createDaemon({ config, logger: createLogger({ level: "info", destination }) });
  daemons.push(daemon);
  const { port } = await daemon.listen();
  return { url: `http://127.0.0.1:${port}`, lines };
}

type Health = { upstreams: Record<string, unknown>[] };
const health = async (url: string, headers: Record<string, string> = {}) => (await (await fetch(`${url}/health`, { headers })).json()) as Health;

describe("what the daemon discloses", () => {
  it("an API key in the query string is refused and never written to the request log", async () => {
    const { url, lines } = await start({ apiKeys: [KEY] });
    for (const query of [`api_key=${KEY}`, `key=${KEY}&limit=3`, `access_token=${KEY}`, `limit=3&Password=${KEY}`, `x-auth=${KEY}`]) {
      const res = await fetch(`${url}/v1/models?${query}`);
      expect(res.status, query).toBe(401);
    }
    await new Promise((resolve) => setImmediate(resolve));
    const log = lines.join("");
    expect(log).not.toContain(KEY);
    const completed = lines.map((l) => JSON.parse(l) as { msg: string; url?: string }).filter((l) => l.msg === "request completed");
    expect(completed.map((l) => l.url)).toEqual([
      "/v1/models?api_key=[redacted]",
      "/v1/models?key=[redacted]&limit=3",
      "/v1/models?access_token=[redacted]",
      "/v1/models?limit=3&Password=[redacted]",
      "/v1/models?x-auth=[redacted]",
    ]);
  });

  it("/health shows upstream addresses and errors only to a caller with a key", async () => {
    const { url } = await start({ apiKeys: [KEY] });
    await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } }); // the upstream is tried (and found down)
    const open = await health(url);
    expect(open.upstreams).toEqual([{ name: "lab", state: "down" }]);
    expect(JSON.stringify(open)).not.toContain("127.0.0.1:9");
    expect((await health(url, { authorization: "Bearer wrong-key-0123456789abcdef" })).upstreams).toEqual([{ name: "lab", state: "down" }]);
    const keyed = await health(url, { authorization: `Bearer ${KEY}` });
    expect(keyed.upstreams).toEqual([{ name: "lab", base_url: UPSTREAM, state: "down", error: expect.any(String) }]);
  });

  it("without keys: shown on a loopback-only daemon, hidden on one listening beyond loopback", async () => {
    const local = await start({ host: "127.0.0.1" });
    expect((await health(local.url)).upstreams[0]).toMatchObject({ name: "lab", base_url: UPSTREAM });
    const exposed = await start({ host: "0.0.0.0", insecureNoAuth: true });
    expect((await health(exposed.url)).upstreams).toEqual([{ name: "lab", state: expect.any(String) }]);
  });
});
