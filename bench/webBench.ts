// `npm run bench -- web`: the daemon's own page (GET /) in headless Chromium on loopback. Time to interactive is the
// page's `tabagent-ready` mark: the script has run, the models, loaded models and rates are fetched and drawn, and
// the playground takes input. Cold loads use a fresh browser context each (no cache); warm loads reload in one
// context (ETag revalidation). Two identical cold series alternate (A and A') to show the noise band. Targets:
// median cold TTI ≤ 500 ms, everything transferred ≤ 100 KB. Needs Debian's chromium (or TABAGENT_CHROMIUM).
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import puppeteer, { type Browser } from "puppeteer-core";
import { ensureFixtures } from "../test/fixtures/ensureFixtures.js";
import { startDaemon } from "./measureDaemon.js";
import { median, percentile } from "./stats.js";

const TTI_TARGET_MS = 500;
const BYTES_TARGET = 100 * 1024;

export const WEB_HELP = `npm run bench -- web [--rounds N] [--json]

The daemon's page at / in headless Chromium (TABAGENT_CHROMIUM, default /usr/bin/chromium): time to interactive
cold (fresh context) and warm (reload), DOMContentLoaded, bytes transferred, with an A/A noise band.
  --rounds N   loads per series (default 15)
  --json       one JSON object instead of the table
`;

interface Load {
  ttiMs: number;
  domContentLoadedMs: number;
  transferredBytes: number;
}

async function measure(browser: Browser, url: string, warm: boolean): Promise<Load> {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    if (warm) {
      await page.goto(url, { waitUntil: "load" });
      await page.waitForSelector("body[data-ready=true]");
      await page.reload({ waitUntil: "load" });
    } else {
      await page.goto(url, { waitUntil: "load" });
    }
    await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
    return await page.evaluate(() => {
      // The browser's Performance API (this project compiles without the DOM types).
      type Entry = { startTime: number; transferSize: number; domContentLoadedEventEnd: number };
      const perf = performance as unknown as { getEntriesByType(type: string): Entry[]; getEntriesByName(name: string): Entry[] };
      const nav = perf.getEntriesByType("navigation")[0]!;
      return {
        ttiMs: perf.getEntriesByName("tabagent-ready")[0]!.startTime,
        domContentLoadedMs: nav.domContentLoadedEventEnd,
        transferredBytes: nav.transferSize + perf.getEntriesByType("resource").reduce((n, r) => n + r.transferSize, 0),
      };
    });
  } finally {
    await context.close();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

export async function runWebSuite(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { rounds: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean" } } });
  if (values.help) {
    process.stdout.write(WEB_HELP);
    return 0;
  }
  const rounds = Number(values.rounds ?? 15);
  const chromium = process.env.TABAGENT_CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(chromium)) {
    process.stderr.write(`web: no chromium at ${chromium}; apt-get install -y chromium, or set TABAGENT_CHROMIUM\n`);
    return 1;
  }
  const fixtures = await ensureFixtures();
  const daemon = await startDaemon({
    modelId: "tiny-chat",
    serveArgs: [
      "--model",
      `tiny-chat=${fixtures.chatModelPath}`,
      "--model",
      `tiny-embed=${fixtures.embeddingModelPath}`,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--gpu",
      "off",
      "--log-level",
      "info",
    ],
  });
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const series: Record<"coldA" | "coldA2" | "warm", Load[]> = { coldA: [], coldA2: [], warm: [] };
  try {
    await measure(browser, `${daemon.url}/`, false); // the first load pays for the browser's own start-up
    for (let i = 0; i < rounds; i++) {
      // Alternating order, so drift on the shared machine hits every series alike.
      const order = i % 2 === 0 ? (["coldA", "coldA2", "warm"] as const) : (["warm", "coldA2", "coldA"] as const);
      for (const name of order) series[name].push(await measure(browser, `${daemon.url}/`, name === "warm"));
    }
  } finally {
    await browser.close();
    await daemon.stop();
  }
  const summary = Object.fromEntries(
    Object.entries(series).map(([name, loads]) => {
      const tti = loads.map((l) => l.ttiMs);
      return [
        name,
        {
          ttiMedianMs: round(median(tti)),
          ttiP90Ms: round(percentile(tti, 90)),
          domContentLoadedMedianMs: round(median(loads.map((l) => l.domContentLoadedMs))),
          transferredMedianBytes: median(loads.map((l) => l.transferredBytes)),
        },
      ];
    }),
  ) as Record<keyof typeof series, { ttiMedianMs: number; ttiP90Ms: number; domContentLoadedMedianMs: number; transferredMedianBytes: number }>;
  const aa = summary.coldA2.ttiMedianMs / summary.coldA.ttiMedianMs;
  const targets = [
    { name: `cold TTI median ≤ ${TTI_TARGET_MS} ms`, pass: summary.coldA.ttiMedianMs <= TTI_TARGET_MS },
    { name: "transferred (cold) ≤ 100 KB", pass: summary.coldA.transferredMedianBytes <= BYTES_TARGET },
  ];
  const report = { suite: "web", rounds, loadavg: loadavg().map(round), ...summary, aaRatio: Math.round(aa * 1000) / 1000, targets };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const lines = [
    `web page at / in headless Chromium, ${rounds} loads per series, load average ${report.loadavg.join(" ")} (shared machine: figures are noisy)`,
    "series       TTI median   TTI p90   DOMContentLoaded   transferred",
    ...(["coldA", "coldA2", "warm"] as const).map((n) => {
      const s = summary[n];
      return `${n.padEnd(12)} ${`${s.ttiMedianMs} ms`.padStart(10)} ${`${s.ttiP90Ms} ms`.padStart(9)} ${`${s.domContentLoadedMedianMs} ms`.padStart(18)} ${`${(s.transferredMedianBytes / 1024).toFixed(1)} KB`.padStart(13)}`;
    }),
    `A/A noise band (cold A' / cold A, TTI median): ${report.aaRatio}`,
    ...targets.map((t) => `${t.pass ? "PASS" : "MISS"}  ${t.name}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}
