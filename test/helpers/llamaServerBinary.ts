import { findLlamaServer } from "../../src/native/findLlamaServer.js";

/**
 * The llama-server the tests run: TABAGENT_LLAMA_SERVER, else the build cache of native/build-llama-server.sh
 * (.ci/run builds it). Missing is a failure with instructions, not a skip: these tests are the proof that the
 * out-of-process engine works.
 */
export async function llamaServerBinary(): Promise<string> {
  const found = await findLlamaServer("standard", { env: process.env });
  if (found.path === null) {
    throw new Error("no llama-server binary: run `native/build-llama-server.sh` (or set TABAGENT_LLAMA_SERVER) before these tests");
  }
  return found.path;
}

/** PIDs of running processes whose command line contains `needle`. */
export async function pidsMatching(needle: string): Promise<number[]> {
  const { readdir, readFile } = await import("node:fs/promises");
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (/\) Z /.test(stat)) continue; // zombies are gone in all but name
    if (cmd.split("\0").join(" ").includes(needle)) out.push(Number(entry));
  }
  return out;
}
