// `npm run bench -- detect`: what detection costs on a models folder of 200 mixed entries (bench/detectFolder.ts),
// (a) detectSource() on each entry, (b) buildModelRegistry() on the folder with a fresh DetectionCache (cold) and
// with a warm one (cached), (c) GET /v1/models on an in-process daemon serving the folder. "Cold" means "not parsed
// before": the files were just written, so the OS page cache holds them and no disk latency is in these numbers.
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { request as httpRequest, Agent } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/loadConfig.js";
import { detectSource } from "../src/detection/detectSource.js";
import { DetectionCache } from "../src/registry/DetectionCache.js";
import { buildModelRegistry } from "../src/registry/ModelRegistry.js";
import { createDaemon, type Daemon } from "../src/server/createDaemon.js";
import { createLogger } from "../src/server/createLogger.js";
import { buildDetectFolder, type DetectFolderSummary } from "./detectFolder.js";
import { ms, table } from "./report.js";
import { median, percentile } from "./stats.js";
import { integer } from "./options.js";

const progress = (message: string) => process.stderr.write(`[bench detect] ${message}\n`);

export const DETECT_HELP = `npm run bench -- detect [options]

  --dir PATH            detect this folder instead of the generated 200-entry one (nothing is written there)
  --passes N            detectSource() passes over every entry (default 3; the first is reported apart)
  --registry-reps N     buildModelRegistry() cold runs (default 3), and 10x as many cached ones
  --requests N          GET /v1/models requests per client (default 200)
  --keep                keep the generated folder (its path is printed)
  --json                print the results as JSON
`;

const DETECT_TARGETS = { coldMeanPerEntryMs: 1, cachedModelsP50Ms: 2 } as const;
/** Entries that read less than this are "small headers" in the report; a GGUF with a 128k+ tokenizer reads 5-10 MiB. */
const SMALL_HEADER_BYTES = 2 << 20;

interface Options {
  dir: string | null;
  passes: number;
  registryReps: number;
  requests: number;
  keep: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      dir: { type: "string" },
      passes: { type: "string" },
      "registry-reps": { type: "string" },
      requests: { type: "string" },
      keep: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return null;
  return {
    dir: values.dir ?? null,
    passes: integer("passes", values.passes, 3),
    registryReps: integer("registry-reps", values["registry-reps"], 3),
    requests: integer("requests", values.requests, 200),
    keep: values.keep === true,
    json: values.json === true,
  };
}

/** Bytes this process read through read(2)-like calls, page cache included (Linux). */
function readIo(): { bytes: number } | null {
  try {
    const text = readFileSync("/proc/self/io", "utf8");
    const bytes = Number(/^rchar:\s+(\d+)/m.exec(text)?.[1]);
    return Number.isFinite(bytes) ? { bytes } : null;
  } catch {
    return null;
  }
}

interface Dist {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

function dist(values: number[]): Dist {
  return { n: values.length, mean: values.reduce((a, b) => a + b, 0) / values.length, p50: median(values), p99: percentile(values, 99), max: Math.max(...values) };
}

interface DetectReport {
  machine: { cpus: number; cpuModel: string; node: string; loadAvg1mStart: number; loadAvg1mEnd: number };
  folder: { dir: string; generated: boolean; entries: number; expectedModels: number | null; writtenMB: number | null; apparentGB: number | null };
  detectSource: {
    firstPass: Dist;
    laterPasses: Dist;
    /** Per kind: entries, mean, p50 and max ms (later passes), mean bytes read (first pass). */
    byKind: { kind: string; entries: number; meanMs: number; p50Ms: number; maxMs: number; bytesRead: number | null }[];
    bytesReadPerEntry: number | null;
    /** Entries that read less than SMALL_HEADER_BYTES (no 100k+ tokenizer in a GGUF header): their mean, later passes. */
    smallHeaders: { entries: number; meanMs: number } | null;
    errors: number;
  };
  registry: { models: number; cold: Dist; cached: Dist; cacheEntries: number };
  daemon: { startupMs: number; models: number; responseBytes: number; fetch: Dist; http: Dist; inject: Dist };
  targets: { name: string; value: number; target: string; pass: boolean }[];
}

export async function runDetectSuite(argv: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${DETECT_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(DETECT_HELP);
    return 0;
  }
  const options = o;
  const loadAvgStart = loadavg()[0] ?? 0;
  let tmp: string | null = null;
  let daemon: Daemon | null = null;
  try {
    let summary: DetectFolderSummary | null = null;
    let dir: string;
    if (options.dir) {
      dir = resolve(options.dir);
    } else {
      tmp = await mkdtemp(join(tmpdir(), "tabagent-bench-detect-"));
      dir = join(tmp, "models");
      progress(`writing the models folder in ${dir}`);
      const t = performance.now();
      summary = await buildDetectFolder(dir);
      progress(
        `${summary.entries} entries, ${(summary.writtenBytes / 1e6).toFixed(0)} MB written (${(summary.apparentBytes / 2 ** 30).toFixed(0)} GiB apparent, sparse) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
    }
    const names = (await readdir(dir)).filter((n) => !n.startsWith(".")).sort();

    // (a) detectSource on each entry. Pass 1 is this process's first parse of every format (JIT cold too).
    progress(`detectSource() on ${names.length} entries, ${options.passes} passes`);
    const perEntry = new Map<string, { ms: number[]; bytes: number | null }>();
    let errors = 0;
    for (let pass = 0; pass < options.passes; pass++) {
      for (const name of names) {
        const io0 = readIo();
        const t0 = performance.now();
        try {
          await detectSource(join(dir, name));
        } catch {
          if (pass === 0) errors++; // broken files throw; the registry skips them with a warning
        }
        const elapsed = performance.now() - t0;
        const io1 = readIo();
        const e = perEntry.get(name) ?? { ms: [], bytes: null };
        e.ms.push(elapsed);
        if (pass === 0 && io0 && io1) e.bytes = io1.bytes - io0.bytes;
        perEntry.set(name, e);
      }
    }
    const firstPass = dist([...perEntry.values()].map((e) => e.ms[0]!));
    const later = options.passes > 1 ? [...perEntry.values()].flatMap((e) => e.ms.slice(1)) : [...perEntry.values()].map((e) => e.ms[0]!);
    const laterMean = (e: { ms: number[] }) => (e.ms.length > 1 ? e.ms.slice(1) : e.ms).reduce((a, b) => a + b, 0) / Math.max(1, e.ms.length > 1 ? e.ms.length - 1 : 1);
    const groups = new Map<string, { entries: number; ms: number[]; all: number[]; max: number; bytes: number[] }>();
    for (const [name, e] of perEntry) {
      const kind = summary?.kindOf.get(name) ?? "(entry)";
      const g = groups.get(kind) ?? { entries: 0, ms: [], all: [], max: 0, bytes: [] };
      const timed = e.ms.slice(options.passes > 1 ? 1 : 0);
      g.entries++;
      g.ms.push(laterMean(e));
      g.all.push(...timed);
      g.max = Math.max(g.max, ...timed);
      if (e.bytes !== null) g.bytes.push(e.bytes);
      groups.set(kind, g);
    }
    const avg = (v: number[]) => (v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length);
    const allBytes = [...perEntry.values()].flatMap((e) => (e.bytes === null ? [] : [e.bytes]));
    const small = [...perEntry.values()].filter((e) => e.bytes !== null && e.bytes < SMALL_HEADER_BYTES).map(laterMean);

    // (b) the daemon's scan: buildModelRegistry with a fresh cache (cold) and again with the same cache (cached).
    progress(`buildModelRegistry(): ${options.registryReps} cold (fresh DetectionCache), ${options.registryReps * 10} cached`);
    const config = loadConfig({ base: { port: 0, host: "127.0.0.1", modelsDirs: [dir], logLevel: "silent", idleTtlSeconds: 0 } });
    const coldMs: number[] = [];
    let cache = new DetectionCache();
    let models = 0;
    for (let i = 0; i < options.registryReps; i++) {
      cache = new DetectionCache();
      const t = performance.now();
      const reg = await buildModelRegistry(config, undefined, { cache });
      coldMs.push(performance.now() - t);
      models = reg.size;
    }
    const cachedMs: number[] = [];
    for (let i = 0; i < options.registryReps * 10; i++) {
      const t = performance.now();
      await buildModelRegistry(config, undefined, { cache });
      cachedMs.push(performance.now() - t);
    }

    // (c) GET /v1/models on a daemon serving the folder, in this process (client and server share the event loop).
    progress(`createDaemon() on the folder, then GET /v1/models x ${options.requests} per client`);
    const t0 = performance.now();
    daemon = await createDaemon({ config, logger: createLogger({ level: "silent", pretty: false }) });
    const { url } = await daemon.listen();
    const startupMs = performance.now() - t0;
    const d = daemon;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaHttp = () =>
      new Promise<string>((resolveBody, reject) => {
        const req = httpRequest(`${url}/v1/models`, { agent }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => (res.statusCode === 200 ? resolveBody(body) : reject(new Error(`status ${res.statusCode}`))));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
    const viaFetch = async () => {
      const res = await fetch(`${url}/v1/models`);
      const body = await res.text();
      if (!res.ok) throw new Error(`status ${res.status}`);
      return body;
    };
    const viaInject = async () => {
      const res = await d.app.inject({ method: "GET", url: "/v1/models" });
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      return res.body;
    };
    const sample = await viaHttp();
    const listed = (JSON.parse(sample) as { data: unknown[] }).data.length;
    const clients = [
      { name: "fetch", run: viaFetch, ms: [] as number[] },
      { name: "http", run: viaHttp, ms: [] as number[] },
      { name: "inject", run: viaInject, ms: [] as number[] },
    ];
    for (let i = 0; i < 20; i++) for (const c of clients) await c.run();
    for (let i = 0; i < options.requests; i++) {
      // Interleaved, so the three see the same machine.
      for (const c of clients) {
        const t = performance.now();
        await c.run();
        c.ms.push(performance.now() - t);
      }
    }
    agent.destroy();

    const detectMean = dist(later).mean;
    const fetchDist = dist(clients[0]!.ms);
    const httpDist = dist(clients[1]!.ms);
    const cpuList = cpus();
    const report: DetectReport = {
      machine: {
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model.trim() ?? "unknown",
        node: process.version,
        loadAvg1mStart: loadAvgStart,
        loadAvg1mEnd: loadavg()[0] ?? 0,
      },
      folder: {
        dir,
        generated: summary !== null,
        entries: names.length,
        expectedModels: summary?.expectedModels ?? null,
        writtenMB: summary ? summary.writtenBytes / 1e6 : null,
        apparentGB: summary ? summary.apparentBytes / 2 ** 30 : null,
      },
      detectSource: {
        firstPass,
        laterPasses: dist(later),
        byKind: [...groups]
          .map(([kind, g]) => ({ kind, entries: g.entries, meanMs: avg(g.ms)!, p50Ms: median(g.all), maxMs: g.max, bytesRead: avg(g.bytes) }))
          .sort((a, b) => b.meanMs * b.entries - a.meanMs * a.entries),
        bytesReadPerEntry: avg(allBytes),
        smallHeaders: small.length > 0 ? { entries: small.length, meanMs: avg(small)! } : null,
        errors,
      },
      registry: { models, cold: dist(coldMs), cached: dist(cachedMs), cacheEntries: cache.size },
      daemon: { startupMs, models: listed, responseBytes: Buffer.byteLength(sample), fetch: fetchDist, http: httpDist, inject: dist(clients[2]!.ms) },
      targets: [
        {
          name: "detectSource() mean per entry, not parsed before (ms)",
          value: detectMean,
          target: `<= ${DETECT_TARGETS.coldMeanPerEntryMs}`,
          pass: detectMean <= DETECT_TARGETS.coldMeanPerEntryMs,
        },
        {
          name: `GET /v1/models p50, ${listed} models, fetch (ms)`,
          value: fetchDist.p50,
          target: `<= ${DETECT_TARGETS.cachedModelsP50Ms}`,
          pass: fetchDist.p50 <= DETECT_TARGETS.cachedModelsP50Ms,
        },
        {
          name: `GET /v1/models p50, ${listed} models, node:http (ms)`,
          value: httpDist.p50,
          target: `<= ${DETECT_TARGETS.cachedModelsP50Ms}`,
          pass: httpDist.p50 <= DETECT_TARGETS.cachedModelsP50Ms,
        },
      ],
    };
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDetectReport(report)}\n`);
    if (summary && models !== summary.expectedModels) {
      progress(`warning: the registry lists ${models} models, the folder holds ${summary.expectedModels}`);
    }
    return 0;
  } finally {
    await daemon?.close();
    if (tmp) {
      if (options.keep) progress(`kept ${tmp}`);
      else await rm(tmp, { recursive: true, force: true });
    }
  }
}

function formatDetectReport(r: DetectReport): string {
  const { machine, folder } = r;
  const lines: string[] = [];
  const written = folder.writtenMB === null ? "" : `, ${folder.writtenMB.toFixed(0)} MB written (${folder.apparentGB!.toFixed(0)} GiB apparent: weights are sparse)`;
  lines.push(`tabagent bench detect: ${folder.entries} entries${folder.expectedModels === null ? "" : `, ${folder.expectedModels} models`}${written}`);
  lines.push(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node}, 1-min load average ${machine.loadAvg1mStart.toFixed(2)} at the start, ${machine.loadAvg1mEnd.toFixed(2)} at the end`,
  );
  lines.push("");
  const row = (label: string, d: Dist, extra = "") => [label, String(d.n), ms(d.mean), ms(d.p50), ms(d.p99), ms(d.max), extra];
  const ds = r.detectSource;
  const rows: string[][] = [["measurement", "n", "mean", "p50", "p99", "max", ""]];
  rows.push(row("detectSource() per entry, first pass", ds.firstPass, `total ${(ds.firstPass.mean * ds.firstPass.n).toFixed(0)} ms`));
  rows.push(row("detectSource() per entry, later passes", ds.laterPasses, `total ${(ds.laterPasses.mean * folder.entries).toFixed(0)} ms per pass`));
  rows.push(row(`buildModelRegistry() cold (fresh cache)`, r.registry.cold, `${r.registry.models} models`));
  rows.push(row(`buildModelRegistry() cached`, r.registry.cached, `${r.registry.cacheEntries} cache entries`));
  rows.push(row(`GET /v1/models, fetch`, r.daemon.fetch, `${(r.daemon.responseBytes / 1024).toFixed(0)} KiB, ${r.daemon.models} models`));
  rows.push(row(`GET /v1/models, node:http keep-alive`, r.daemon.http));
  rows.push(row(`GET /v1/models, app.inject (no socket)`, r.daemon.inject));
  lines.push(table(rows));
  lines.push(`createDaemon() + listen on the folder (includes a cold buildModelRegistry): ${ms(r.daemon.startupMs)}`);
  if (ds.bytesReadPerEntry !== null) {
    lines.push(`bytes read per entry (first pass, /proc/self/io rchar, page cache included): ${(ds.bytesReadPerEntry / 1024).toFixed(0)} KiB`);
  }
  if (ds.smallHeaders) {
    lines.push(`detectSource() mean over the ${ds.smallHeaders.entries} entries that read < 2 MiB (no 100k+ tokenizer in a GGUF header): ${ms(ds.smallHeaders.meanMs)}`);
  }
  if (ds.errors > 0) lines.push(`entries detectSource() refused (broken files; the registry skips them with a warning): ${ds.errors}`);
  lines.push("");
  lines.push("detectSource() by kind (later passes; sorted by total time):");
  const kindRows: string[][] = [["  kind", "entries", "mean", "p50", "max", "KiB read", "share"]];
  const total = ds.byKind.reduce((n, k) => n + k.meanMs * k.entries, 0);
  for (const k of ds.byKind) {
    kindRows.push([
      `  ${k.kind}`,
      String(k.entries),
      ms(k.meanMs),
      ms(k.p50Ms),
      ms(k.maxMs),
      k.bytesRead === null ? "" : (k.bytesRead / 1024).toFixed(0),
      `${((100 * k.meanMs * k.entries) / total).toFixed(0)} %`,
    ]);
  }
  lines.push(table(kindRows));
  lines.push("");
  lines.push("targets:");
  lines.push(table(r.targets.map((t) => ["  " + t.name, t.value.toFixed(3), t.target, t.pass ? "PASS" : "MISS"])));
  lines.push("");
  lines.push('notes: "cold" = not parsed before by this process; the folder was just written, so the OS page cache holds every');
  lines.push("       header and no disk latency is included (a first scan after a reboot also waits for the disk). Entries are");
  lines.push("       top-level files and folders of the models dir; a folder entry detects every file in it. The daemon runs in");
  lines.push("       this process: client and server share one event loop, so a request's time includes both sides.");
  return lines.join("\n");
}
