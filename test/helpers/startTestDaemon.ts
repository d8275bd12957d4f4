import OpenAI from "openai";
import { pino } from "pino";
import { loadConfig } from "../../src/config/loadConfig.js";
import type { Config } from "../../src/config/configSchema.js";
import { createDaemon, type Daemon } from "../../src/server/createDaemon.js";
import { ensureFixtures, type FixturePaths } from "../fixtures/ensureFixtures.js";

export interface TestDaemon {
  daemon: Daemon;
  url: string;
  client: OpenAI;
  fixtures: FixturePaths;
  config: Config;
  close(): Promise<void>;
}

/** The real daemon, in process, on a free port, serving the generated tiny models. */
export async function startTestDaemon(
  overrides: Partial<Record<keyof Config, unknown>> = {},
  extraModels: { id: string; path: string }[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<TestDaemon> {
  const fixtures = await ensureFixtures();
  const config = loadConfig({
    base: {
      host: "127.0.0.1",
      port: 0,
      threads: 1,
      gpu: "off",
      // GGUF tests name the engine they test; the default (auto) path has tests of its own.
      ggufEngine: "node-llama-cpp",
      contextSize: 512,
      parallel: 4,
      logLevel: "silent",
      models: [{ id: "tiny-chat", path: fixtures.chatModelPath }, { id: "tiny-embed", path: fixtures.embeddingModelPath }, ...extraModels],
      ...overrides,
    },
  });
  const daemon = await createDaemon({ config, env, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }) });
  const { url } = await daemon.listen();
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
  return { daemon, url, client, fixtures, config, close: () => daemon.close() };
}

/** POSTs JSON (or raw text) and returns status, headers and parsed body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE or empty */
  }
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: json as { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown>,
  };
}
