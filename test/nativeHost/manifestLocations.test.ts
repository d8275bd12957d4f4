import { describe, expect, it } from "vitest";
import { BROWSERS, hostManifest, launcherDir, manifestLocation } from "../../src/nativeHost/manifestLocations.js";

const at = (platform: "linux" | "darwin" | "win32", scope: "user" | "system") =>
  Object.fromEntries(
    BROWSERS.map((b) => {
      const loc = manifestLocation(b, { platform, scope, home: platform === "win32" ? "C:\\Users\\u" : "/home/u", launcherDir: "C:\\Data\\native-host" });
      return [b, loc.registryKey ?? loc.manifestPath];
    }),
  );

describe("manifest locations", () => {
  it("Linux: each browser's documented folders", () => {
    expect(at("linux", "user")).toEqual({
      chrome: "/home/u/.config/google-chrome/NativeMessagingHosts/com.tabagent.host.json",
      chromium: "/home/u/.config/chromium/NativeMessagingHosts/com.tabagent.host.json",
      edge: "/home/u/.config/microsoft-edge/NativeMessagingHosts/com.tabagent.host.json",
      brave: "/home/u/.config/BraveSoftware/Brave-Browser/NativeMessagingHosts/com.tabagent.host.json",
      firefox: "/home/u/.mozilla/native-messaging-hosts/com.tabagent.host.json",
    });
    expect(at("linux", "system")).toEqual({
      chrome: "/etc/opt/chrome/native-messaging-hosts/com.tabagent.host.json",
      chromium: "/etc/chromium/native-messaging-hosts/com.tabagent.host.json",
      edge: "/etc/opt/edge/native-messaging-hosts/com.tabagent.host.json",
      brave: "/etc/opt/chrome/native-messaging-hosts/com.tabagent.host.json",
      firefox: "/usr/lib/mozilla/native-messaging-hosts/com.tabagent.host.json",
    });
  });

  it("macOS: Application Support for the user, /Library for everyone", () => {
    expect(at("darwin", "user")).toEqual({
      chrome: "/home/u/Library/Application Support/Google/Chrome/NativeMessagingHosts/com.tabagent.host.json",
      chromium: "/home/u/Library/Application Support/Chromium/NativeMessagingHosts/com.tabagent.host.json",
      edge: "/home/u/Library/Application Support/Microsoft Edge/NativeMessagingHosts/com.tabagent.host.json",
      brave: "/home/u/Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts/com.tabagent.host.json",
      firefox: "/home/u/Library/Application Support/Mozilla/NativeMessagingHosts/com.tabagent.host.json",
    });
    expect(at("darwin", "system")).toEqual({
      chrome: "/Library/Google/Chrome/NativeMessagingHosts/com.tabagent.host.json",
      chromium: "/Library/Application Support/Chromium/NativeMessagingHosts/com.tabagent.host.json",
      edge: "/Library/Microsoft/Edge/NativeMessagingHosts/com.tabagent.host.json",
      brave: "/Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts/com.tabagent.host.json",
      firefox: "/Library/Application Support/Mozilla/NativeMessagingHosts/com.tabagent.host.json",
    });
  });

  it("Windows: registry keys under HKCU or HKLM naming a manifest beside the launcher", () => {
    expect(at("win32", "user")).toEqual({
      chrome: "HKCU\\Software\\Google\\Chrome\\NativeMessagingHosts\\com.tabagent.host",
      chromium: "HKCU\\Software\\Chromium\\NativeMessagingHosts\\com.tabagent.host",
      edge: "HKCU\\Software\\Microsoft\\Edge\\NativeMessagingHosts\\com.tabagent.host",
      brave: "HKCU\\Software\\BraveSoftware\\Brave-Browser\\NativeMessagingHosts\\com.tabagent.host",
      firefox: "HKCU\\Software\\Mozilla\\NativeMessagingHosts\\com.tabagent.host",
    });
    expect(at("win32", "system").chrome).toBe("HKLM\\Software\\Google\\Chrome\\NativeMessagingHosts\\com.tabagent.host");
    const loc = manifestLocation("edge", { platform: "win32", scope: "user", home: "C:\\Users\\u", launcherDir: "C:\\Data\\native-host" });
    expect(loc.manifestPath).toBe("C:\\Data\\native-host\\edge-com.tabagent.host.json");
  });

  it("launcher folders per scope and platform", () => {
    expect(launcherDir({ platform: "linux", scope: "user", dataDir: "/d", env: {} })).toBe("/d/native-host");
    expect(launcherDir({ platform: "linux", scope: "system", dataDir: "/d", env: {} })).toBe("/usr/local/lib/tabagent/native-host");
    expect(launcherDir({ platform: "darwin", scope: "system", dataDir: "/d", env: {} })).toBe("/Library/Application Support/TabAgent/native-host");
    expect(launcherDir({ platform: "win32", scope: "system", dataDir: "C:\\d", env: { ProgramData: "D:\\PD" } })).toBe("D:\\PD\\TabAgent\\native-host");
  });

  it("Chrome-family manifests allow origins, Firefox's allow add-on ids", () => {
    expect(hostManifest("chrome", "/l", ["abcdefghijklmnopabcdefghijklmnop"])).toEqual({
      name: "com.tabagent.host",
      description: expect.any(String) as string,
      path: "/l",
      type: "stdio",
      allowed_origins: ["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"],
    });
    expect(hostManifest("firefox", "/l", ["x@example.org"])).toMatchObject({ allowed_extensions: ["x@example.org"] });
  });
});
