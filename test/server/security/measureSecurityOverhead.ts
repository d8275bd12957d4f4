/**
 * Per-request cost of the security hook: `npx tsx test/server/security/measureSecurityOverhead.ts`.
 * The same test app with and without registerSecurity, measured in interleaved rounds (so drift hits every variant
 * alike, in a shuffled order); the figure is the median over rounds of the mean CPU time per request in a round.
 */
import { Agent, IncomingMessage, ServerResponse, request } from "node:http";
import { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { performance } from "node:perf_hooks";
import { createHostPolicy } from "../../../src/server/security/createHostPolicy.js";
import { createKeyMatcher } from "../../../src/server/security/createKeyMatcher.js";
import { registerSecurity, type SecurityOptions } from "../../../src/server/security/registerSecurity.js";
import { startSecurityTestApp, type SecurityTestApp } from "./securityTestApp.js";

const KEYS = Array.from({ length: 8 }, (_, i) => `sk-tabagent-${String(i).repeat(24)}`);
const KEY = KEYS[KEYS.length - 1]!;

interface Variant {
  name: string;
  security: Partial<SecurityOptions> | null;
}
// Every variant is sent the same headers, so the baseline parses them too and the differences are the hook's work.
const HEADERS = { host: "127.0.0.1:8471", authorization: `Bearer ${KEY}`, origin: "https://app.example" };
const VARIANTS: Variant[] = [
  { name: "no security layer", security: null },
  { name: "defaults (Host check only)", security: {} },
  { name: "1 key", security: { apiKeys: [KEY] } },
  { name: "CORS (origin allowed)", security: { corsOrigins: ["https://app.example"] } },
  { name: "8 keys + CORS", security: { apiKeys: KEYS, corsOrigins: ["https://app.example"] } },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * µs per request of this process's CPU time (user + system). Client and server both run here, so on a shared,
 * busy machine this is steadier than wall time, which also counts the time other processes held the CPU.
 */
async function cpuMicros(n: number, one: () => Promise<void>): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await one();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

async function injectRound(app: SecurityTestApp, headers: Record<string, string>, n: number): Promise<number> {
  return cpuMicros(n, async () => {
    const r = await app.app.inject({ method: "GET", url: "/v1/models", headers });
    if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
  });
}

function httpGet(agent: Agent, port: number, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/v1/models", agent, headers }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end();
  });
}

async function httpRound(app: SecurityTestApp, agent: Agent, headers: Record<string, string>, n: number): Promise<number> {
  return cpuMicros(n, () => httpGet(agent, app.port, headers));
}

function micro(label: string, fn: () => unknown, n = 200_000): void {
  for (let i = 0; i < 10_000; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) fn();
    rounds.push(((performance.now() - start) * 1e6) / n);
  }
  console.log(`  ${label.padEnd(44)} ${median(rounds).toFixed(0).padStart(5)} ns`);
}

type Hook = (request: unknown, reply: unknown, done: (err?: Error) => void) => void;

/** The hook alone: registered on a stand-in app, called with a request-like object and a real ServerResponse. */
function hookAlone(label: string, security: Partial<SecurityOptions>): void {
  let hook: Hook | undefined;
  const fakeApp = { addHook: (_name: string, fn: Hook) => (hook = fn) } as unknown as FastifyInstance;
  registerSecurity(fakeApp, { apiKeys: [], allowedHosts: [], corsOrigins: [], bindHost: "127.0.0.1", ...security });
  const raw = new ServerResponse(new IncomingMessage(new Socket()));
  const req = { method: "GET", url: "/v1/models", headers: HEADERS, is404: false, routeOptions: { url: "/v1/models" } };
  const reply = { raw };
  const done = (err?: Error) => {
    if (err) throw err;
  };
  micro(label, () => hook!(req, reply, done), 100_000);
}

async function main(): Promise<void> {
  const rounds = Number(process.env.ROUNDS ?? 25);
  const apps = await Promise.all(VARIANTS.map((v) => startSecurityTestApp(v.security)));
  const agents = VARIANTS.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
  const inject: number[][] = VARIANTS.map(() => []);
  const http: number[][] = VARIANTS.map(() => []);
  for (let i = 0; i < VARIANTS.length; i++) {
    await injectRound(apps[i]!, HEADERS, 3000); // warm-up
    await httpRound(apps[i]!, agents[i]!, HEADERS, 1000);
  }
  for (let r = 0; r < rounds; r++) {
    // A different order each round, so no variant always runs right after another's garbage.
    const order = VARIANTS.map((_, i) => i).sort(() => Math.random() - 0.5);
    for (const i of order) {
      inject[i]!.push(await injectRound(apps[i]!, HEADERS, 1000));
      http[i]!.push(await httpRound(apps[i]!, agents[i]!, HEADERS, 500));
    }
  }
  const base = { inject: median(inject[0]!), http: median(http[0]!) };
  console.log(`node ${process.version}; ${rounds} rounds; median CPU µs per request, client + server (overhead vs. no security layer)`);
  console.log(`${"variant".padEnd(30)} ${"app.inject".padStart(20)} ${"HTTP keep-alive".padStart(22)}`);
  VARIANTS.forEach((v, i) => {
    const mi = median(inject[i]!);
    const mh = median(http[i]!);
    const d = (x: number) => (i === 0 ? "" : ` (${x >= 0 ? "+" : ""}${x.toFixed(2)})`);
    console.log(`${v.name.padEnd(30)} ${(mi.toFixed(2) + d(mi - base.inject)).padStart(20)} ${(mh.toFixed(2) + d(mh - base.http)).padStart(22)}`);
  });
  console.log("the hook's parts, called directly (median ns per call):");
  const hosts = createHostPolicy("127.0.0.1", []);
  const one = createKeyMatcher([KEY]);
  const eight = createKeyMatcher(KEYS);
  micro("Host check (127.0.0.1:8471)", () => hosts.allows("127.0.0.1:8471"));
  micro("key check, 1 key (SHA-256 + timingSafeEqual)", () => one(KEY));
  micro("key check, 8 keys", () => eight(KEY));
  console.log("the whole hook, called directly (median ns per request):");
  for (const v of VARIANTS.slice(1)) hookAlone(v.name, v.security ?? {});
  for (const a of agents) a.destroy();
  await Promise.all(apps.map((a) => a.close()));
}

await main();
