import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { findLlamaServer } from "../src/native/findLlamaServer.js";

/**
 * Runs once before the test files. The llama-server tests need a binary: when none is found (a fresh clone), build
 * it from the llama.cpp source inside node-llama-cpp with the project's own script (about 10 minutes on 2 cores,
 * cached outside the clone afterwards), so `npm test` works anywhere `npm ci` does.
 */
export default async function setup(): Promise<void> {
  // With a llama-server binary here, `ggufEngine: auto` would move every GGUF chat model the CLI tests serve onto
  // it; those tests name the engine they test, and the default path has tests of its own (which set auto).
  process.env.TABAGENT_GGUF_ENGINE ??= "node-llama-cpp";
  await preparePython();
  await prepareLlamaServer();
}

/**
 * The transformers sidecar tests and the Python fixtures need the dev venv: created by the project's script when
 * missing (a few minutes the first time, then reused; keyed by the pinned requirements).
 */
async function preparePython(): Promise<void> {
  const script = fileURLToPath(new URL("../native/setup-python.sh", import.meta.url));
  // pip's progress goes to the terminal (nothing when the venv exists); test/fixtures/ensurePythonFixtures.ts
  // finds the venv the same way afterwards, at once.
  const child = spawn("bash", [script, "--dev", "--print-path"], { stdio: ["ignore", "ignore", "inherit"] });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) throw new Error(`native/setup-python.sh --dev failed (exit ${code}); the transformers tests need its venv`);
}

async function prepareLlamaServer(): Promise<void> {
  const found = await findLlamaServer("standard", { env: process.env });
  if (found.path !== null) {
    process.env.TABAGENT_LLAMA_SERVER = found.path;
    return;
  }
  const script = fileURLToPath(new URL("../native/build-llama-server.sh", import.meta.url));
  process.stderr.write("[tests] no llama-server binary yet: building one (about 10 minutes the first time, cached afterwards)\n");
  // The build's progress goes to the terminal; only the binary's path comes back on stdout.
  const child = spawn("bash", [script, "--print-path"], { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) throw new Error(`native/build-llama-server.sh failed (exit ${code}); the llama-server tests need its binary`);
  process.env.TABAGENT_LLAMA_SERVER = stdout.trim().split("\n").at(-1);
}
