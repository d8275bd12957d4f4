// `npm run bench -- rerank`: rerank throughput (documents/s) through the daemon against each engine used directly,
// on the same weights: the transformers sidecar against sentence-transformers' CrossEncoder.predict in Python, and
// the llama-server engine against llama-server's own /v1/rerank (same binary, threads, slots and context). The
// daemon's in-process node-llama-cpp engine is shown against llama-server direct too (no target: another engine).
// Rounds alternate which side goes first; an A/A row (the direct side against itself) gives the noise band.
// Targets print PASS/MISS; the exit code is 0 unless the measurement broke.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureTinyReranker, pythonExecutable } from "../test/fixtures/ensurePythonFixtures.js";
import { llamaServerBinary } from "../test/helpers/llamaServerBinary.js";
import { startDaemon, type DaemonRunner } from "./measureDaemon.js";
import { integer } from "./options.js";
import { table } from "./report.js";
import { median } from "./stats.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const progress = (message: string) => process.stderr.write(`[bench rerank] ${message}\n`);

const RERANK_HELP = `npm run bench -- rerank [options]

  --docs N       documents per request (default 64)
  --hidden N     the generated BERT cross-encoder's width (default 384, MiniLM-L6's; 32 is the test fixture)
  --layers N     its layers (default 6); heads are hidden / 32
  --threads N    CPU threads, both sides (default 1)
  --parallel N   llama-server slots, both sides (default 1)
  --reps N       timed rounds (default 15)
  --json         print the results as JSON
`;

const TARGET_RATIO = 0.95;
const WORDS = "the a of capital city france paris berlin cat dog pet fish water river sun moon star music piano book code python model search".split(" ");

interface Options {
  docs: number;
  hidden: number;
  layers: number;
  threads: number;
  parallel: number;
  reps: number;
  json: boolean;
}

/** Deterministic documents of 6 to 20 words from the fixture's vocabulary. */
function documents(n: number): string[] {
  let x = 12345;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: n }, () => Array.from({ length: 6 + (next() % 15) }, () => WORDS[next() % WORDS.length]).join(" "));
}

/** One timed request: milliseconds. */
type Side = () => Promise<number>;

async function postRerank(url: string, body: object): Promise<number> {
  const start = performance.now();
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = (await res.json()) as { results?: unknown[] };
  if (res.status !== 200 || !Array.isArray(json.results)) throw new Error(`${url} answered ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
  return performance.now() - start;
}

/** CrossEncoder.predict in a long-lived Python process (native/python/bench/direct_rerank.py). */
async function startDirectPython(python: string, model: string, pairsFile: string, threads: number): Promise<{ side: Side; child: ChildProcess }> {
  const child = spawn(python, [resolve(ROOT, "native/python/bench/direct_rerank.py"), model, pairsFile, "--threads", String(threads)], {
    stdio: ["pipe", "pipe", "inherit"],
    detached: true, // its own session, as the daemon's sidecar (see startDirectLlamaServer)
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done || first.value !== "ready") throw new Error("direct_rerank.py did not start");
  const side: Side = async () => {
    child.stdin.write("run\n");
    const line = await lines.next();
    if (line.done) throw new Error("direct_rerank.py exited");
    return Number(line.value);
  };
  return { side, child };
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
    s.once("error", fail);
  });
}

/**
 * llama-server run directly with the flags the daemon gives it for a reranker, in a session of its own as the
 * daemon's children are (detached): with the kernel's autogroup scheduling on a loaded machine, a process in the
 * bench's session and one in its own session get different CPU shares, which moved the ratio between 0.5× and 1.5×.
 */
async function startDirectLlamaServer(binary: string, gguf: string, o: Options): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const args = ["--model", gguf, "--host", "127.0.0.1", "--port", String(port), "--ctx-size", String(128 * o.parallel), "--parallel", String(o.parallel)];
  const child = spawn(binary, [...args, "--threads", String(o.threads), "--n-gpu-layers", "0", "--reranking"], { stdio: "ignore", detached: true });
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { url, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error("llama-server did not become healthy");
}

interface Row {
  name: string;
  directMs: number;
  daemonMs: number;
  /** The daemon's documents/s over the direct side's. */
  ratio: number;
  /** The direct side against itself: how far apart two identical sides land on this machine now. */
  aaRatio: number;
  target: number | null;
}

/** `reps` rounds of direct, daemon, direct again, in an order that rotates each round. */
async function compareSides(name: string, direct: Side, daemon: Side, reps: number, target: number | null): Promise<Row> {
  for (let i = 0; i < 3; i++) {
    await direct(); // warm-up: loads, caches, first-request costs
    await daemon();
  }
  const a: number[] = [];
  const b: number[] = [];
  const d: number[] = [];
  const sides: [number[], Side][] = [
    [a, direct],
    [d, daemon],
    [b, direct],
  ];
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < sides.length; k++) {
      const [into, run] = sides[(r + k) % sides.length]!;
      into.push(await run());
    }
  }
  const directMs = median([...a, ...b]);
  return { name, directMs, daemonMs: median(d), ratio: directMs / median(d), aaRatio: median(a) / median(b), target };
}

function parse(args: string[]): Options | null {
  const { values } = parseArgs({
    args,
    options: {
      docs: { type: "string" },
      hidden: { type: "string" },
      layers: { type: "string" },
      threads: { type: "string" },
      parallel: { type: "string" },
      reps: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return null;
  return {
    docs: integer("docs", values.docs, 64),
    hidden: integer("hidden", values.hidden, 384),
    layers: integer("layers", values.layers, 6),
    threads: integer("threads", values.threads, 1),
    parallel: integer("parallel", values.parallel, 1),
    reps: integer("reps", values.reps, 15),
    json: values.json === true,
  };
}

export async function runRerankSuite(args: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parse(args);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${RERANK_HELP}`);
    return 2;
  }
  if (!o) {
    process.stdout.write(RERANK_HELP);
    return 0;
  }
  // The size of a small real reranker (ms-marco-MiniLM-L6: 384 wide, 6 layers) with the fixture's small vocabulary:
  // on the 32-wide test fixture a request is a few milliseconds and fixed costs swamp the comparison.
  const size = ["--hidden", String(o.hidden), "--layers", String(o.layers), "--heads", String(Math.max(1, Math.floor(o.hidden / 32)))];
  const [fixture, python, binary] = await Promise.all([ensureTinyReranker(size), pythonExecutable(), llamaServerBinary()]);
  const query = "what is the capital of france";
  const docs = documents(o.docs);
  const dir = mkdtempSync(join(tmpdir(), "tabagent-bench-rerank-"));
  const pairsFile = join(dir, "pairs.json");
  writeFileSync(pairsFile, JSON.stringify({ query, documents: docs }));
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      models: [
        { id: "rr-hf", path: fixture.dir },
        { id: "rr-srv", path: fixture.gguf, engine: "llama-server" },
        { id: "rr-gguf", path: fixture.gguf, engine: "node-llama-cpp" },
      ],
    }),
  );
  progress(`cross-encoder ${size.join(" ")} at ${fixture.dir} and its GGUF; ${o.docs} documents per request, threads ${o.threads}, parallel ${o.parallel}`);
  const children: ChildProcess[] = [];
  let daemon: DaemonRunner | null = null;
  try {
    daemon = await startDaemon({
      serveArgs: ["--config", config, "--host", "127.0.0.1", "--port", "0", "--gpu", "off", "--threads", String(o.threads), "--parallel", String(o.parallel)].concat([
        "--idle-ttl",
        "0",
        "--log-level",
        "info",
        "--python",
        python,
      ]),
      modelId: "rr-hf",
      env: { TABAGENT_LLAMA_SERVER: binary },
    });
    const viaDaemon =
      (model: string): Side =>
      () =>
        postRerank(`${daemon!.url}/v1/rerank`, { model, query, documents: docs, return_documents: false });
    const py = await startDirectPython(python, fixture.dir, pairsFile, o.threads);
    children.push(py.child);
    const srv = await startDirectLlamaServer(binary, fixture.gguf, o);
    children.push(srv.child);
    const srvDirect: Side = () => postRerank(`${srv.url}/v1/rerank`, { query, documents: docs });
    const rows = [
      await compareSides("transformers: daemon vs CrossEncoder.predict", py.side, viaDaemon("rr-hf"), o.reps, TARGET_RATIO),
      await compareSides("llama-server: daemon vs llama-server /v1/rerank", srvDirect, viaDaemon("rr-srv"), o.reps, TARGET_RATIO),
      await compareSides("node-llama-cpp (daemon) vs llama-server /v1/rerank", srvDirect, viaDaemon("rr-gguf"), o.reps, null),
    ];
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ options: o, rows }, null, 2)}\n`);
    } else {
      const docsPerS = (ms: number) => ((o.docs / ms) * 1000).toFixed(0);
      process.stdout.write(
        table([
          ["comparison", "direct docs/s", "daemon docs/s", "ratio", "A/A band", "target"],
          ...rows.map((r) => [
            r.name,
            docsPerS(r.directMs),
            docsPerS(r.daemonMs),
            `${r.ratio.toFixed(3)}×`,
            `±${Math.abs(1 - r.aaRatio).toFixed(3)}`,
            r.target === null ? "(info)" : `≥ ${r.target}× ${r.ratio >= r.target ? "PASS" : "MISS"}`,
          ]),
        ]) + "\nMedians over alternating rounds; the machine's CPU is shared, so compare the ratio with the A/A band.\n",
      );
    }
    return 0;
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
