import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseCaller, refuseCaller } from "../../src/nativeHost/checkCaller.js";
import { installNativeHost, launcherScript, nativeHostStatus, uninstallNativeHost, type RegistryEditor } from "../../src/nativeHost/installNativeHost.js";

const CHROME_ID = "abcdefghijklmnopabcdefghijklmnop";
const OTHER_ID = "ponmlkjihgfedcbaponmlkjihgfedcba";
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function home() {
  const d = await mkdtemp(join(tmpdir(), "nh-install-"));
  dirs.push(d);
  return { platform: "linux" as const, scope: "user" as const, home: d, dataDir: join(d, "data"), env: {} };
}

describe("install, uninstall, status", () => {
  it("writes a launcher and each browser's manifest, and the caller check reads the allow list from them", async () => {
    const t = await home();
    const r = await installNativeHost(t, ["chrome", "chromium", "firefox"], [CHROME_ID, "tab@example.org"], ["/usr/bin/node", "/opt/tabagent/bin/tabagent"]);
    expect(r.skipped).toEqual([]);
    expect(r.installed.map((i) => i.browser)).toEqual(["chrome", "chromium", "firefox"]);
    const chrome = JSON.parse(await readFile(join(t.home, ".config/google-chrome/NativeMessagingHosts/com.tabagent.host.json"), "utf8")) as Record<string, unknown>;
    expect(chrome).toMatchObject({ name: "com.tabagent.host", path: r.launcher, type: "stdio", allowed_origins: [`chrome-extension://${CHROME_ID}/`] });
    const firefox = JSON.parse(await readFile(join(t.home, ".mozilla/native-messaging-hosts/com.tabagent.host.json"), "utf8")) as Record<string, unknown>;
    expect(firefox).toMatchObject({ allowed_extensions: ["tab@example.org"] });
    expect((await stat(r.launcher)).mode & 0o111).not.toBe(0);
    const launcher = await readFile(r.launcher, "utf8");
    expect(launcher).toContain(`exec '/usr/bin/node' '/opt/tabagent/bin/tabagent' 'native-host' '--record' '${join(t.dataDir, "native-host", "installed.json")}' "$@"`);

    const record = join(t.dataDir, "native-host", "installed.json");
    expect(refuseCaller([`chrome-extension://${CHROME_ID}/`], record)).toBeNull();
    expect(refuseCaller([`chrome-extension://${CHROME_ID}/`, "--parent-window=1234"], record)).toBeNull();
    expect(refuseCaller([`chrome-extension://${OTHER_ID}/`], record)).toMatch(/not in the installed manifests' allowed_origins/);
    expect(refuseCaller(["/x/com.tabagent.host.json", "tab@example.org"], record)).toBeNull();
    expect(refuseCaller(["/x/com.tabagent.host.json", "evil@example.org"], record)).toMatch(/allowed_extensions/);
    expect(refuseCaller([], record)).toMatch(/caller arguments/);
    expect(refuseCaller([`chrome-extension://${CHROME_ID}/`], undefined)).toMatch(/--record/);

    const rows = nativeHostStatus(t, ["chrome", "chromium", "edge", "brave", "firefox"]);
    expect(rows.filter((x) => x.scope === "user" && x.installed).map((x) => x.browser)).toEqual(["chrome", "chromium", "firefox"]);
    expect(rows.find((x) => x.browser === "chrome" && x.scope === "user")).toMatchObject({ launcherExists: true, allowed: [`chrome-extension://${CHROME_ID}/`] });

    // Removing one browser's manifest takes its origins out of the allow list; the last one takes the launcher.
    await uninstallNativeHost(t, ["chrome", "chromium"]);
    expect(refuseCaller([`chrome-extension://${CHROME_ID}/`], record)).toMatch(/not in the installed/);
    expect(refuseCaller(["/x/com.tabagent.host.json", "tab@example.org"], record)).toBeNull();
    await uninstallNativeHost(t, ["firefox"]);
    await expect(stat(r.launcher)).rejects.toThrow();
    expect(nativeHostStatus(t, ["chrome", "firefox"]).some((x) => x.installed)).toBe(false);
  });

  it("skips a browser none of the ids fit, and writes into --dir for a custom profile", async () => {
    const t = await home();
    const r = await installNativeHost({ ...t, dir: join(t.home, "profile", "NativeMessagingHosts") }, ["chromium"], [CHROME_ID], ["node", "tabagent"]);
    expect(r.installed[0]!.manifestPath).toBe(join(t.home, "profile", "NativeMessagingHosts", "com.tabagent.host.json"));
    const skipped = await installNativeHost(t, ["firefox"], [CHROME_ID], ["node", "tabagent"]);
    expect(skipped.installed).toEqual([]);
    expect(skipped.skipped[0]!.reason).toMatch(/Firefox add-on id/);
    expect(
      nativeHostStatus(t, ["chromium"])
        .filter((x) => x.installed)
        .map((x) => x.manifestPath),
    ).toEqual([r.installed[0]!.manifestPath]);
  });

  it("on Windows, sets and deletes the registry key naming the manifest (no shell)", async () => {
    const t = { ...(await home()), platform: "win32" as const };
    const ops: Parameters<RegistryEditor>[0][] = [];
    const registry: RegistryEditor = (op) => {
      ops.push(op);
      return Promise.resolve();
    };
    await installNativeHost(t, ["edge"], [CHROME_ID], ["C:\\node.exe", "C:\\tabagent\\bin\\tabagent"], { registry });
    expect(ops).toEqual([
      {
        action: "set",
        key: "HKCU\\Software\\Microsoft\\Edge\\NativeMessagingHosts\\com.tabagent.host",
        value: expect.stringContaining("edge-com.tabagent.host.json") as string,
      },
    ]);
    await uninstallNativeHost(t, ["edge"], registry);
    expect(ops[1]).toEqual({ action: "delete", key: "HKCU\\Software\\Microsoft\\Edge\\NativeMessagingHosts\\com.tabagent.host" });
    expect(launcherScript("win32", ["C:\\node.exe", "C:\\t\\bin\\tabagent"], "C:\\r.json", "C:\\c.yaml")).toBe(
      '@echo off\r\n"C:\\node.exe" "C:\\t\\bin\\tabagent" "native-host" "--record" "C:\\r.json" "--config" "C:\\c.yaml" %*\r\n',
    );
  });

  it("parses the callers' arguments of each browser", () => {
    expect(parseCaller([`chrome-extension://${CHROME_ID}/`])).toEqual({ kind: "chromium", origin: `chrome-extension://${CHROME_ID}/` });
    expect(parseCaller([`chrome-extension://${CHROME_ID}`])).toEqual({ kind: "chromium", origin: `chrome-extension://${CHROME_ID}/` });
    expect(parseCaller(["/m/com.tabagent.host.json", "a@b.c"])).toEqual({ kind: "firefox", manifestPath: "/m/com.tabagent.host.json", extensionId: "a@b.c" });
    expect(parseCaller(["https://example.com/"])).toBeNull();
    expect(parseCaller([`chrome-extension://${CHROME_ID}/`, "extra"])).toBeNull();
  });
});
