// `npm ci` as the README runs it, on a copy of this checkout holding what a clean clone holds (tracked files and
// new files git does not ignore, as they are in the working tree): it must install and build without npm warnings
// about the project's own setup (.npmrc keys npm does not know, engines the dependencies refuse, install scripts
// package.json's allowScripts does not cover), and onnxruntime-node's install script must not fetch its CUDA
// provider libraries (from NuGet: offline, the install would fail). The environment is this one without npm's
// npm_* variables and ONNXRUNTIME_NODE_INSTALL*, so only the project's own files decide.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, run } from "./deployHelpers.js";

/** Files a clean clone would hold, with the working tree's content. */
async function cleanCopy(dest: string): Promise<void> {
  const listed = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
  expect(listed.code, listed.all).toBe(0);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    const from = join(REPO, file);
    if (!existsSync(from)) continue; // deleted in the working tree
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    cpSync(from, join(dest, file), { verbatimSymlinks: true });
  }
}

/** This environment without what an enclosing npm run or a shell setting would add to npm's own configuration. */
function plainEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^npm_/i.test(k) || /^ONNXRUNTIME_NODE_INSTALL/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

describe("npm ci on a clean copy of the checkout", () => {
  it("installs and builds with no npm warning about the project's config, and fetches no CUDA libraries", { timeout: 480_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "tabagent-npm-ci-"));
    try {
      await cleanCopy(dir);
      expect(existsSync(join(dir, "node_modules"))).toBe(false);
      const r = await run("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline"], { env: plainEnv(), cwd: dir, timeoutMs: 420_000 });
      expect(r.code, r.all).toBe(0);
      const warnings = r.all.split("\n").filter((line) => /^npm warn/i.test(line));
      expect(
        warnings.filter((line) => /Unknown \w+ config|EBADENGINE|install-scripts|allowScripts/i.test(line)),
        r.all,
      ).toEqual([]);
      expect(r.all).not.toMatch(/nuget|Downloading .*onnxruntime/i);
      // The prepare script built the CLI.
      expect(existsSync(join(dir, "dist/src/cli/main.js"))).toBe(true);
      const ortBin = join(dir, "node_modules/onnxruntime-node/bin/napi-v6", process.platform, process.arch);
      expect(readdirSync(ortBin).filter((f) => /providers_(cuda|tensorrt|shared)/.test(f))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
