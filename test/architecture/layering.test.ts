import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

interface Import {
  from: string; // layer of the importing file
  file: string;
  to: string; // layer imported
  typeOnly: boolean;
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** Static imports between src/ layers (the first folder under src/); dynamic `import()` is not a static edge. */
function imports(): Import[] {
  const out: Import[] = [];
  for (const file of files(SRC)) {
    const text = readFileSync(file, "utf8");
    const layer = relative(SRC, file).split("/")[0]!;
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+"(\.[^"]+)"/gms)) {
      const target = relative(SRC, resolve(dirname(file), m[2]!));
      out.push({ from: layer, file: relative(SRC, file), to: target.split("/")[0]!, typeOnly: Boolean(m[1]) });
    }
  }
  return out;
}

const all = imports();
const crossing = (from: string, allowed: string[], { values = false } = {}) =>
  all.filter((i) => i.from === from && i.to !== from && !allowed.includes(i.to) && !(values && i.typeOnly)).map((i) => `${i.file} → ${i.to}`);

describe("layering", () => {
  it("finds the imports it checks", () => {
    expect(all.length).toBeGreaterThan(300);
  });

  it("core imports nothing above it, not even types", () => {
    expect(crossing("core", [])).toEqual([]);
  });

  it("config imports only core (and the hub source parser)", () => {
    expect(crossing("config", ["core", "detection"])).toEqual([]);
    expect(all.filter((i) => i.from === "config" && i.to === "detection").map((i) => i.file)).toEqual(["config/configSchema.ts"]);
  });

  it("the engine table loads no engine: backends are imported for types or dynamically", () => {
    expect(all.filter((i) => i.from === "engines" && i.to === "backends" && !i.typeOnly).map((i) => i.file)).toEqual([]);
  });

  it("detection runs without engines, routing or the server", () => {
    expect(crossing("detection", ["core", "engines"], { values: true })).toEqual([]);
  });

  it("the native-messaging host talks to the daemon over HTTP: it never imports routing, engines or the API", () => {
    expect(crossing("nativeHost", ["core", "config", "detection", "native", "store", "server"])).toEqual([]);
    // Only the entry point reads the server's version and API-key helpers.
    expect(all.filter((i) => i.from === "nativeHost" && i.to === "server" && !i.file.endsWith("runNativeHost.ts")).map((i) => i.file)).toEqual([]);
  });

  it("the API does not reach into the server; backends do not reach into routing, the API or the server", () => {
    expect(crossing("api", ["core", "backends", "engines", "router"])).toEqual([]);
    expect(crossing("backends", ["core", "config", "detection", "native", "supervisor"])).toEqual([]);
  });
});
