import { HOST_NAME } from "./nativeMessagingLimits.js";
import { allowList, readRecord } from "./installRecord.js";

/** Who started the host, from the arguments the browser passes. */
export type Caller = { kind: "chromium"; origin: string } | { kind: "firefox"; extensionId: string; manifestPath: string };

/**
 * Chrome-family browsers pass the caller's origin `chrome-extension://ID/` (and on Windows `--parent-window=N`, a
 * window handle the host has no use for); Firefox passes the manifest's path and the add-on's id.
 */
export function parseCaller(args: string[]): Caller | null {
  const rest = args.filter((a) => !/^--parent-window=\d+$/.test(a));
  if (rest.length === 1 && /^chrome-extension:\/\/[a-p]{32}\/?$/.test(rest[0]!)) {
    return { kind: "chromium", origin: rest[0]!.endsWith("/") ? rest[0]! : `${rest[0]}/` };
  }
  if (rest.length === 2 && rest[0]!.endsWith(".json") && rest[1]!.length > 0 && rest[1]!.length <= 200) {
    return { kind: "firefox", manifestPath: rest[0]!, extensionId: rest[1]! };
  }
  return null;
}

/** Null when the caller is one the installed manifests (listed in the record) allow; else why not. */
export function refuseCaller(args: string[], recordFile: string | undefined): string | null {
  const caller = parseCaller(args);
  if (!caller) return `started without a browser's caller arguments (got ${JSON.stringify(args.slice(0, 3))}); browsers start this host themselves`;
  if (!recordFile) return "started without --record: run the launcher that `tabagent native-host install` wrote";
  const allowed = allowList(readRecord(recordFile), HOST_NAME);
  if (caller.kind === "chromium") return allowed.origins.has(caller.origin) ? null : `the origin ${caller.origin} is not in the installed manifests' allowed_origins`;
  return allowed.extensions.has(caller.extensionId) ? null : `the add-on ${caller.extensionId} is not in the installed manifests' allowed_extensions`;
}
