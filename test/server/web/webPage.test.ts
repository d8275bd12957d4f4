// The daemon's page in a real browser: Debian's chromium, headless, driven by puppeteer-core (no browser download).
// CI must install chromium (apt-get install -y chromium); TABAGENT_CHROMIUM names another binary.
import { existsSync } from "node:fs";
import { request } from "node:http";
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

/**
 * The browser globals the callbacks below use once they run in the page, typed just enough: this project compiles
 * without the DOM types, and these names exist only inside the browser.
 */
interface PageElement {
  id: string;
  value: string;
  disabled: boolean;
  textContent: string | null;
  querySelector(selector: string): PageElement | null;
}
declare const document: {
  activeElement: PageElement | null;
  cookie: string;
  getElementById(id: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & { [index: number]: PageElement | undefined };
};
declare const window: { axe: { run(context: unknown, options: object): Promise<{ violations: { id: string; help: string; nodes: unknown[] }[] }> } };
declare const sessionStorage: { getItem(key: string): string | null };
declare const localStorage: { length: number };
declare class MutationObserver {
  constructor(callback: () => void);
  observe(target: PageElement, options: { childList: boolean; subtree: boolean; characterData: boolean }): void;
  disconnect(): void;
}

const KEY = "sk-tabagent-webpage-aaaaaaaaaaa";
/** Screenshots land here (git-ignored), for CI to keep as artifacts. */
const ARTIFACTS = join(process.cwd(), "test-artifacts", "web");
const CHROMIUM = process.env.TABAGENT_CHROMIUM ?? "/usr/bin/chromium";

let t: TestDaemon;
let keyed: TestDaemon;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set TABAGENT_CHROMIUM`);
  await mkdir(ARTIFACTS, { recursive: true });
  [t, keyed] = await Promise.all([startTestDaemon({ contextSize: 2048 }), startTestDaemon({ apiKeys: [KEY] })]);
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container: no sandbox; no GPU here.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await keyed?.close();
});

async function open(url: string): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  await page.goto(url, { waitUntil: "load" });
  return page;
}

/** Each row's cells, " | " between them. */
const cellTexts = (page: Page, selector: string) =>
  page.$$eval(selector, (rows) => rows.map((r) => [...r.children].map((c) => (c.textContent ?? "").replace(/\s+/g, " ").trim()).join(" | ")));

describe("GET / over HTTP", () => {
  it("serves the page to browsers with a strict CSP, the envelope to API clients, all under 100 KB gzipped", async () => {
    const res = await fetch(`${t.url}/`, { headers: { accept: "text/html,application/xhtml+xml", "accept-encoding": "gzip" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toMatch(/https?:/);
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    let transferred = 0;
    for (const path of ["/", "/web/app.js", "/web/app.css"]) {
      // Node's fetch decodes gzip itself; the raw size is what the header says went over the wire.
      const raw = await fetch(`${t.url}${path}`, { headers: { accept: "text/html", "accept-encoding": "gzip" } });
      expect(raw.headers.get("content-encoding")).toBe("gzip");
      transferred += Number(raw.headers.get("content-length"));
      await raw.arrayBuffer();
    }
    expect(transferred).toBeGreaterThan(0);
    expect(transferred).toBeLessThan(100 * 1024);
    // Nothing from elsewhere: every src/href in the page is this origin's (or the empty favicon).
    const html = await (await fetch(`${t.url}/`, { headers: { accept: "text/html" } })).text();
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    const api = await fetch(`${t.url}/`);
    expect(api.status).toBe(404);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe("unknown_route");
    // DNS rebinding: a page served under another name gets nothing (fetch cannot set Host, node:http can).
    const status = await new Promise<number>((resolve, reject) => {
      request(`${t.url}/`, { headers: { accept: "text/html", host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    expect(status).toBe(403);
  });
});

describe("the page in headless Chromium", () => {
  it("lists the models, streams a chat answer, stops a long one, and passes an accessibility check", async () => {
    const page = await open(`${t.url}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
    const rows = await cellTexts(page, "#models tr");
    expect(rows.find((r) => r.startsWith("tiny-chat"))).toMatch(/^tiny-chat \| gguf \| chat \| (node-llama-cpp|llama-server)\S* \S+.* \| unloaded \| /);
    expect(rows.find((r) => r.startsWith("tiny-embed"))).toMatch(/^tiny-embed \| gguf \| embeddings \| /);
    // Only chat models are offered in the playground.
    expect(await page.$$eval("#chat-model option", (o) => o.map((x) => (x as unknown as PageElement).value))).toEqual(["tiny-chat"]);

    // Keyboard only: Tab to the message box, type, Ctrl+Enter.
    const streamed: string[] = [];
    page.on("response", (r) => {
      if (r.url().endsWith("/v1/chat/completions")) streamed.push(r.headers()["content-type"] ?? "");
    });
    await page.$eval("#chat-temperature", (e) => ((e as unknown as PageElement).value = "0"));
    await page.$eval("#chat-max-tokens", (e) => ((e as unknown as PageElement).value = "12"));
    let focused = "";
    for (let i = 0; i < 40 && focused !== "chat-input"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.id ?? "");
    }
    expect(focused).toBe("chat-input");
    await page.keyboard.type("Hello");
    await page.keyboard.down("Control");
    await page.keyboard.press("Enter");
    await page.keyboard.up("Control");
    await page.waitForFunction(() => document.querySelectorAll("#transcript li.assistant").length === 1 && !document.getElementById("chat-send")!.disabled, {
      timeout: 60_000,
    });
    const answer = await page.$eval("#transcript li.assistant .text", (e) => e.textContent ?? "");
    expect(answer.length).toBeGreaterThan(0);
    expect(streamed).toEqual([expect.stringMatching(/^text\/event-stream/)]);
    expect(await page.$eval("#chat-timing", (e) => e.textContent)).toMatch(/tokens\/s/);
    await page.screenshot({ path: join(ARTIFACTS, "page.png"), fullPage: true });

    // Stop: a long greedy answer is cut off by the button.
    await page.$eval("#chat-max-tokens", (e) => ((e as unknown as PageElement).value = "1900"));
    await page.type("#chat-input", "Tell me more");
    // The tiny model streams ~2000 tokens/s: Stop is clicked inside the page the moment the first text shows, since
    // a click sent from here after a round trip could come after the whole answer on a loaded machine.
    const clickedStop = page.evaluate(
      () =>
        new Promise<void>((resolve) => {
          const textOf = () => document.querySelectorAll("#transcript li.assistant")[1]?.querySelector(".text")?.textContent ?? "";
          const observer = new MutationObserver(() => {
            if (textOf().length === 0) return;
            observer.disconnect();
            (document.getElementById("chat-stop") as unknown as { click(): void }).click();
            resolve();
          });
          observer.observe(document.getElementById("transcript")!, { childList: true, subtree: true, characterData: true });
        }),
    );
    await page.click("#chat-send");
    await clickedStop;
    await page.waitForFunction(() => (document.querySelectorAll("#transcript li.assistant")[1]?.textContent ?? "").includes("[stopped]"), { timeout: 10_000 });
    expect(await page.$eval("#chat-stop", (e) => (e as unknown as PageElement).disabled)).toBe(true);

    // Accessibility: axe-core's WCAG 2 A/AA rules (labels, names, contrast, landmarks). The page's CSP forbids
    // injected scripts, so this page bypasses it for the checker only.
    const axe = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
    const check = await browser.newPage();
    await check.setBypassCSP(true);
    await check.goto(`${t.url}/`, { waitUntil: "load" });
    await check.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
    await check.addScriptTag({ content: axe });
    type AxeResult = { violations: { id: string; help: string; nodes: unknown[] }[] };
    const result = await check.evaluate(async (): Promise<AxeResult> => {
      const axe = window.axe;
      return axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "best-practice"] } });
    });
    expect(result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`)).toEqual([]);
    await page.close();
    await check.close();
  }, 180_000);

  it("with an API key configured, asks for it and keeps it in sessionStorage only", async () => {
    const page = await open(`${keyed.url}/`);
    await page.waitForSelector("#key-form:not([hidden])", { timeout: 30_000 });
    expect(await page.$eval("#api-key", (e) => (e as unknown as PageElement) === document.activeElement)).toBe(true);
    await page.type("#api-key", KEY);
    await page.keyboard.press("Enter");
    await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
    expect(await cellTexts(page, "#models tr")).toEqual(expect.arrayContaining([expect.stringMatching(/^tiny-chat/)]));
    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem("tabagent-api-key"), local: localStorage.length, cookie: document.cookie }));
    expect(storage).toEqual({ session: KEY, local: 0, cookie: "" });
    await page.screenshot({ path: join(ARTIFACTS, "page-with-key.png") });
    // A new tab (a new session) has to ask again.
    const other = await browser.createBrowserContext();
    const fresh = await other.newPage();
    await fresh.goto(`${keyed.url}/`, { waitUntil: "load" });
    await fresh.waitForSelector("#key-form:not([hidden])", { timeout: 30_000 });
    await other.close();
    await page.close();
  }, 120_000);
});
