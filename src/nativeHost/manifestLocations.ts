import { posix, win32 } from "node:path";
import { HOST_NAME } from "./nativeMessagingLimits.js";

export const BROWSERS = ["chrome", "chromium", "edge", "brave", "firefox"] as const;
export type Browser = (typeof BROWSERS)[number];
export type InstallScope = "user" | "system";
export type HostPlatform = "linux" | "darwin" | "win32";

/** Where one browser looks for the host: a folder holding `<name>.json`, or on Windows a registry key naming the file. */
export interface ManifestLocation {
  browser: Browser;
  scope: InstallScope;
  /** The manifest file. On Windows it lives beside the launcher and the registry key points to it. */
  manifestPath: string;
  /** Windows only: `HKCU\...\NativeMessagingHosts\<name>` (HKLM for system), whose default value is the path. */
  registryKey: string | null;
}

const LINUX_USER: Record<Browser, string> = {
  chrome: ".config/google-chrome/NativeMessagingHosts",
  chromium: ".config/chromium/NativeMessagingHosts",
  edge: ".config/microsoft-edge/NativeMessagingHosts",
  brave: ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
  firefox: ".mozilla/native-messaging-hosts",
};
const LINUX_SYSTEM: Record<Browser, string> = {
  chrome: "/etc/opt/chrome/native-messaging-hosts",
  chromium: "/etc/chromium/native-messaging-hosts",
  edge: "/etc/opt/edge/native-messaging-hosts",
  // Brave on Linux reads Google Chrome's system folder.
  brave: "/etc/opt/chrome/native-messaging-hosts",
  firefox: "/usr/lib/mozilla/native-messaging-hosts",
};
const MAC_USER: Record<Browser, string> = {
  chrome: "Library/Application Support/Google/Chrome/NativeMessagingHosts",
  chromium: "Library/Application Support/Chromium/NativeMessagingHosts",
  edge: "Library/Application Support/Microsoft Edge/NativeMessagingHosts",
  brave: "Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts",
  firefox: "Library/Application Support/Mozilla/NativeMessagingHosts",
};
const MAC_SYSTEM: Record<Browser, string> = {
  chrome: "/Library/Google/Chrome/NativeMessagingHosts",
  chromium: "/Library/Application Support/Chromium/NativeMessagingHosts",
  edge: "/Library/Microsoft/Edge/NativeMessagingHosts",
  brave: "/Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts",
  firefox: "/Library/Application Support/Mozilla/NativeMessagingHosts",
};
const WINDOWS_KEY: Record<Browser, string> = {
  chrome: "Software\\Google\\Chrome\\NativeMessagingHosts",
  chromium: "Software\\Chromium\\NativeMessagingHosts",
  edge: "Software\\Microsoft\\Edge\\NativeMessagingHosts",
  brave: "Software\\BraveSoftware\\Brave-Browser\\NativeMessagingHosts",
  firefox: "Software\\Mozilla\\NativeMessagingHosts",
};

export interface LocationInput {
  platform: HostPlatform;
  scope: InstallScope;
  home: string;
  /** Where the launcher is written (see launcherDir): Windows keeps the manifests there too. */
  launcherDir: string;
}

/** The documented place each browser reads the host's manifest from (Chrome's and MDN's native-messaging pages). */
export function manifestLocation(browser: Browser, { platform, scope, home, launcherDir }: LocationInput): ManifestLocation {
  const file = `${HOST_NAME}.json`;
  if (platform === "win32") {
    return {
      browser,
      scope,
      manifestPath: win32.join(launcherDir, `${browser}-${file}`),
      registryKey: `${scope === "user" ? "HKCU" : "HKLM"}\\${WINDOWS_KEY[browser]}\\${HOST_NAME}`,
    };
  }
  const dir =
    platform === "darwin"
      ? scope === "user"
        ? posix.join(home, MAC_USER[browser])
        : MAC_SYSTEM[browser]
      : scope === "user"
        ? posix.join(home, LINUX_USER[browser])
        : LINUX_SYSTEM[browser];
  return { browser, scope, manifestPath: posix.join(dir, file), registryKey: null };
}

/** Where the launcher script (and the record of installed manifests) goes: the data folder, or a system folder. */
export function launcherDir(input: { platform: HostPlatform; scope: InstallScope; dataDir: string; env: NodeJS.ProcessEnv }): string {
  const { platform, scope, dataDir, env } = input;
  if (scope === "user") return (platform === "win32" ? win32 : posix).join(dataDir, "native-host");
  if (platform === "win32") return win32.join(env.ProgramData ?? "C:\\ProgramData", "TabAgent", "native-host");
  if (platform === "darwin") return "/Library/Application Support/TabAgent/native-host";
  return "/usr/local/lib/tabagent/native-host";
}

/** The launcher's file name: a shell script, or a batch file on Windows. */
export function launcherName(platform: HostPlatform): string {
  return platform === "win32" ? "tabagent-native-host.bat" : "tabagent-native-host";
}

/** Chrome-family extension ids: 32 letters a-p. */
export const CHROME_EXTENSION_ID = /^[a-p]{32}$/;
/** Firefox add-on ids: an email-like id or a {GUID}. */
export const FIREFOX_EXTENSION_ID = /^(?:[A-Za-z0-9._+-]{1,80}@[A-Za-z0-9.-]{1,80}|\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\})$/;

/** The manifest a browser reads: Chrome-family browsers name origins, Firefox names add-on ids. */
export function hostManifest(browser: Browser, launcherPath: string, extensionIds: string[]): Record<string, unknown> {
  const base = { name: HOST_NAME, description: "TabAgent: local models for browser extensions", path: launcherPath, type: "stdio" };
  return browser === "firefox" ? { ...base, allowed_extensions: extensionIds } : { ...base, allowed_origins: extensionIds.map((id) => `chrome-extension://${id}/`) };
}
