// A real browser: Debian's headless Chromium loads the test extension (test/fixtures/nativeHostExtension, its ID
// fixed by the manifest's key), whose background calls chrome.runtime.connectNative and reports what came back.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/spawnCli.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

/** The ID Chromium derives from the manifest's `key`. */
const EXTENSION_ID = "fddnmkfkmknlgkmaelapmhdmkidoghgb";
const FIXTURE = fileURLToPath(new URL("../fixtures/nativeHostExtension", import.meta.url));
const CHROMIUM = ["chromium", "chromium-browser"].find((c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0);

interface Report {
  received: { id: string; ok?: boolean; event?: string; text?: string; result?: Record<string, unknown>; error?: unknown }[];
  disconnected?: string;
  thrown?: string;
}

let dir: string;
let t: TestDaemon;
let server: Server;
let browser: ChildProcess | undefined;
let browserLog = "";

// CI installs Debian's chromium (apt-get install -y chromium) for this test; without it there is no browser to drive.
describe.skipIf(!CHROMIUM)("headless Chromium calls the host through chrome.runtime.connectNative", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nh-chromium-"));
    t = await startTestDaemon({ ggufEngine: "node-llama-cpp", contextSize: 1024 });
  }, 60_000);
  afterAll(async () => {
    if (browser && browser.exitCode === null) browser.kill("SIGKILL");
    server?.close();
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips ping and a short chat", async () => {
    const reported = new Promise<Report>((resolve) => {
      server = createServer((req, res) => {
        let body = "";
        req.on("data", (d: Buffer) => (body += d.toString()));
        req.on("end", () => {
          res.end("ok");
          if (req.method === "POST") resolve(JSON.parse(body) as Report);
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const reportUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/report`;
    const extension = join(dir, "extension");
    await cp(FIXTURE, extension, { recursive: true });
    const background = join(extension, "background.js");
    await writeFile(background, (await readFile(background, "utf8")).replaceAll("__REPORT_URL__", reportUrl));
    // A custom --user-data-dir: Chromium reads user-level host manifests from its NativeMessagingHosts folder.
    const profile = join(dir, "profile");
    const installed = await runCli(
      [
        "native-host",
        "install",
        "--browser",
        "chromium",
        "--extension-id",
        EXTENSION_ID,
        "--dir",
        join(profile, "NativeMessagingHosts"),
        "--data-dir",
        join(dir, "data"),
      ],
      { HOME: dir },
    );
    expect(installed.code, installed.stderr).toBe(0);

    browser = spawn(
      CHROMIUM!,
      [
        "--headless=new",
        `--user-data-dir=${profile}`,
        `--load-extension=${extension}`,
        `--disable-extensions-except=${extension}`,
        "--disable-features=DisableLoadExtensionCommandLineSwitch",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "about:blank",
      ],
      { env: { ...process.env, HOME: dir, TABAGENT_URL: t.url, TABAGENT_LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "pipe"] },
    );
    browser.stderr!.on("data", (d: Buffer) => (browserLog = (browserLog + d.toString()).slice(-20_000)));
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () =>
          reject(
            new Error(
              `no report from the extension within 90 s; Chromium's stderr:\n${browserLog
                .split("\n")
                .filter((l) => !/dbus/i.test(l))
                .join("\n")}`,
            ),
          ),
        90_000,
      ),
    );
    const report = await Promise.race([reported, timeout]);
    expect(report.thrown).toBeUndefined();
    const ping = report.received.find((m) => m.id === "ping" && m.ok !== undefined);
    expect(ping).toMatchObject({ ok: true, result: { pong: true, daemon: { url: t.url } } });
    const chat = report.received.find((m) => m.id === "chat" && m.ok !== undefined);
    expect(chat?.ok, JSON.stringify(chat)).toBe(true);
    const tokens = report.received.filter((m) => m.id === "chat" && m.event === "token");
    expect(tokens.length).toBeGreaterThan(0);
    const text = (chat!.result as { choices: { text: string }[] }).choices[0]!.text;
    expect(tokens.map((m) => m.text).join("")).toBe(text);
    const direct = await t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Hello there" }], max_tokens: 8, temperature: 0 });
    expect(text).toBe(direct.choices[0]!.message.content);
  }, 150_000);
});
